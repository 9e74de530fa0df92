//! Variables in the configuration's values: `${VAR}` is the environment
//! variable `VAR`, `${VAR:-default}` the same or `default` when it is unset
//! or empty, and `$$` a `$`. Any other `$` stays as it is. Expanded after
//! the YAML is read, inside one scalar at a time, so a value can never add
//! keys or lines to the file; keys are never expanded.

use std::collections::HashMap;

use serde_saphyr::Spanned;

use super::node::Node;

/// Why a value's variables cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum VarError {
    /// `${NAME}` with `NAME` unset, and no default.
    Unset(String),
    /// `${` with no `}` after it.
    Unclosed,
    /// `${...}` whose name is not letters, digits and `_` (not starting
    /// with a digit).
    BadName(String),
}

impl std::fmt::Display for VarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarError::Unset(name) => write!(
                f,
                "the environment variable {name} is not set (give a default with ${{{name}:-default}}, \
                 or write $$ for a literal $)"
            ),
            VarError::Unclosed => f.write_str("\"${\" without its closing \"}\" (write $$ for a literal $)"),
            VarError::BadName(name) => write!(
                f,
                "\"{name}\" is not a variable name (letters, digits and _, not starting with a digit)"
            ),
        }
    }
}

/// `text` with its variables expanded from `env`; `None` when it has no
/// `$` construct to expand (nothing changes).
pub(super) fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, VarError> {
    if !text.contains("${") && !text.contains("$$") {
        return Ok(None);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(more) = after.strip_prefix('$') {
            out.push('$');
            rest = more;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner.find('}').ok_or(VarError::Unclosed)?;
            let (name, default) = match inner[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&inner[..end], None),
            };
            if !is_name(name) {
                return Err(VarError::BadName(name.to_string()));
            }
            match (env(name).filter(|v| !v.is_empty() || default.is_none()), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(VarError::Unset(name.to_string())),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Some(out))
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where each expanded value stands (line, column), with the text it was
/// written as: messages about it show that text, never the value.
pub(super) type FromEnv = HashMap<(u64, u64), String>;

/// Expands every string value of the tree (map values and list items, not
/// keys); each value that cannot be is returned with its place.
pub(super) fn expand_tree(
    node: &mut Spanned<Node>,
    env: &dyn Fn(&str) -> Option<String>,
    from_env: &mut FromEnv,
    failed: &mut Vec<((u64, u64), VarError)>,
) {
    let at = (node.referenced.line(), node.referenced.column());
    match &mut node.value {
        Node::Map(entries) => {
            for (_, v) in entries {
                expand_tree(v, env, from_env, failed);
            }
        }
        Node::Seq(items) => {
            for v in items {
                expand_tree(v, env, from_env, failed);
            }
        }
        Node::Str(text) => match expand(text, env) {
            Ok(Some(value)) => {
                from_env.insert(at, std::mem::replace(text, value));
            }
            Ok(None) => {}
            Err(e) => failed.push((at, e)),
        },
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "REGION" => Some("eu-west-1".into()),
            "EMPTY" => Some(String::new()),
            "TAG" => Some("1.27".into()),
            _ => None,
        }
    }

    fn x(text: &str) -> Result<Option<String>, VarError> {
        expand(text, &env)
    }

    #[test]
    fn variables_defaults_and_dollars() {
        assert_eq!(x("plain text"), Ok(None));
        assert_eq!(x("cost: $5"), Ok(None));
        assert_eq!(x("${REGION}").unwrap().unwrap(), "eu-west-1");
        assert_eq!(
            x("ecr.${REGION}.aws/${TAG}").unwrap().unwrap(),
            "ecr.eu-west-1.aws/1.27"
        );
        assert_eq!(x("${MISSING:-fallback}").unwrap().unwrap(), "fallback");
        assert_eq!(x("${REGION:-fallback}").unwrap().unwrap(), "eu-west-1");
        // `:-`: an empty value takes the default; no default: empty it is
        assert_eq!(x("${EMPTY:-d}").unwrap().unwrap(), "d");
        assert_eq!(x("a${EMPTY}b").unwrap().unwrap(), "ab");
        assert_eq!(x("${MISSING:-}").unwrap().unwrap(), "");
        assert_eq!(x("$${REGION}").unwrap().unwrap(), "${REGION}");
        assert_eq!(x("$$$$").unwrap().unwrap(), "$$");
        assert_eq!(x("a $b $${c}").unwrap().unwrap(), "a $b ${c}");
        // a value is never read again: no variable inside a variable
        let nested = |n: &str| (n == "A").then(|| "${REGION}".to_string());
        assert_eq!(expand("${A}", &nested).unwrap().unwrap(), "${REGION}");
    }

    #[test]
    fn what_cannot_be_expanded_is_told() {
        assert_eq!(x("${MISSING}"), Err(VarError::Unset("MISSING".into())));
        assert_eq!(x("ok ${REGION} ${NOPE}"), Err(VarError::Unset("NOPE".into())));
        assert_eq!(x("${REGION"), Err(VarError::Unclosed));
        assert_eq!(x("${}"), Err(VarError::BadName(String::new())));
        assert_eq!(x("${1X}"), Err(VarError::BadName("1X".into())));
        assert_eq!(x("${A-B}"), Err(VarError::BadName("A-B".into())));
        assert!(VarError::Unset("X".into()).to_string().contains("${X:-default}"));
    }
}

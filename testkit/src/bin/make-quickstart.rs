//! Writes the quickstart's example source (see `testkit::quickstart`):
//!
//!     cargo run -p testkit --bin make-quickstart -- examples/quickstart/source

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make-quickstart <layout dir>");
    let dir = std::path::Path::new(&dir);
    let tags = testkit::quickstart::write(dir);
    println!("wrote {tags} tags to {}", dir.display());
}

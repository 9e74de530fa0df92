//! The quickstart's example source: a tiny two-platform image as an OCI
//! image layout, from the test image generator with a fixed seed, so the
//! committed bytes can be made again exactly.

use std::path::Path;

use crate::{Format, Image, ImageGen};

/// Writes the example layout into `dir` (replacing what is there).
pub fn write(dir: &Path) -> usize {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove the old layout");
    }
    let mut generator = ImageGen::seeded(2024);
    let base = vec![generator.layer(Format::Oci, 256)];
    let mut images = Vec::new();
    for tag in ["1.0.0", "1.1.0", "2.0.0-rc1", "latest"] {
        let children = [("linux", "amd64"), ("linux", "arm64")]
            .into_iter()
            .map(|p| generator.image(Format::Oci, &[128], &base, p))
            .collect();
        images.push((tag, generator.index(Format::Oci, children)));
    }
    let refs: Vec<(&str, &Image)> = images.iter().map(|(t, i)| (*t, i)).collect();
    crate::layout::write_layout(dir, &refs);
    refs.len()
}

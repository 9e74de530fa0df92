//! Writes the quickstart's example source: a tiny multi-platform image as an
//! OCI image layout, from the test image generator with a fixed seed, so the
//! committed bytes can be made again exactly.
//!
//!     cargo run -p testkit --bin make-quickstart -- examples/quickstart/source

use testkit::{Format, ImageGen};

fn main() {
    let dir = std::env::args().nth(1).expect("usage: make-quickstart <layout dir>");
    let dir = std::path::Path::new(&dir);
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
    let refs: Vec<(&str, &testkit::Image)> = images.iter().map(|(t, i)| (*t, i)).collect();
    testkit::layout::write_layout(dir, &refs);
    println!("wrote {} tags to {}", refs.len(), dir.display());
}

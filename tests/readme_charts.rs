//! The charts README.md shows are what the current code draws from the
//! committed fan-in sample, byte for byte (re-make them with
//! scripts/readme-charts.sh).

mod common;

use common::{analyze, sample, scratch};

#[test]
fn readme_charts_are_made_by_the_current_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let shown: Vec<&str> = readme
        .split("samples/charts/")
        .skip(1)
        .filter_map(|rest| rest.split_once(".png").map(|(name, _)| name))
        .collect();
    assert!(shown.len() >= 7, "README shows {shown:?}");
    let out = scratch("readme-charts");
    analyze(&[&sample("fanin-synthetic.pcap.gz")], &out, &[]);
    for name in shown {
        let committed = std::fs::read(sample(&format!("charts/{name}.png"))).unwrap();
        let drawn = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert!(
            committed == drawn,
            "samples/charts/{name}.png differs from what the code draws: run scripts/readme-charts.sh"
        );
    }
}

//! `pwsnas arch info --svg`: each space's drawing rendered in a real browser (headless Chromium, see
//! `browser/`), read back from the DOM: the structure the arch string says (nodes, edges and their
//! ops; blocks and what they pick) and a layout where no label overlaps another label or a node and
//! every text stays inside its box and the picture.
use serde_json::Value;

mod browser;
mod common;

use common::{ok, s};

/// `pwsnas arch info --svg` of `arch` in `space`, rendered and measured.
fn drawn(space: &[&str], arch: &str) -> Option<Value> {
    let browser = browser::chromium()?;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("arch.svg");
    let mut args = vec!["arch", "info"];
    args.extend(space);
    args.extend(["--arch", arch, "--svg", s(&file)]);
    ok(args);
    let svg = std::fs::read_to_string(&file).unwrap();
    let mut drawings = browser::measure(&browser, &browser::page_of_svg(&svg));
    assert_eq!(drawings.len(), 1);
    let drawing = drawings.pop().unwrap();
    browser::assert_clean(&drawing);
    assert!(
        drawing["width"].as_f64().unwrap() > 100.0 && drawing["height"].as_f64().unwrap() > 50.0,
        "{drawing}"
    );
    Some(drawing)
}

fn strings(v: &Value) -> Vec<Vec<String>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .collect()
}

#[test]
fn an_nb201_cell_is_drawn_as_its_dag_with_an_op_on_every_edge_but_none() {
    let arch = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|";
    let Some(d) = drawn(&["--space", "nb201"], arch) else { return };
    assert_eq!(d["kind"], "cells");
    let cells = d["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 1);
    let nodes = strings(&cells[0]["nodes"]);
    assert_eq!(
        nodes.iter().map(|n| n[1].as_str()).collect::<Vec<_>>(),
        ["input", "inner", "inner", "output"]
    );
    let mut edges = strings(&cells[0]["edges"]);
    edges.sort();
    let want = [
        ["0", "1", "nor_conv_3x3"],
        ["0", "2", "skip_connect"],
        ["0", "3", "nor_conv_1x1"],
        ["1", "3", "avg_pool_3x3"],
        ["2", "3", "nor_conv_3x3"],
    ];
    assert_eq!(edges, want.map(|e| e.map(String::from).to_vec()), "the none edge 1→2 is left out");
}

#[test]
fn a_darts_genotype_is_drawn_as_its_normal_and_reduction_cells() {
    let Some(d) = drawn(&["--space", "darts"], "PDARTS") else { return };
    let cells = d["cells"].as_array().unwrap();
    let titles: Vec<&str> = cells.iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["normal cell", "reduction cell"]);
    for cell in cells {
        let nodes = strings(&cell["nodes"]);
        let labels: Vec<&str> = nodes.iter().map(|n| n[0].as_str()).collect();
        assert_eq!(labels, ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]);
        let edges = strings(&cell["edges"]);
        // Two op edges into each intermediate node; the output concatenates all four.
        for node in ["0", "1", "2", "3"] {
            let into: Vec<_> = edges.iter().filter(|e| e[1] == node).collect();
            assert_eq!(into.len(), 2, "{node}: {into:?}");
            assert!(into.iter().all(|e| !e[2].is_empty() && e[2] != "none"), "{into:?}");
        }
        let concat: Vec<&str> = edges.iter().filter(|e| e[1] == "c_{k}").map(|e| e[0].as_str()).collect();
        assert_eq!(concat, ["0", "1", "2", "3"]);
        assert!(edges.iter().filter(|e| e[1] == "c_{k}").all(|e| e[2].is_empty()));
    }
    // PDARTS's normal node 3 takes sep_conv_3x3 from c_{k-2} and dil_conv_5x5 from node 2 (its
    // genotype's `('sep_conv_3x3',0), ('dil_conv_5x5', 4)`).
    let normal = strings(&cells[0]["edges"]);
    assert!(normal.contains(&["c_{k-2}", "3", "sep_conv_3x3"].map(String::from).to_vec()), "{normal:?}");
    assert!(normal.contains(&["2", "3", "dil_conv_5x5"].map(String::from).to_vec()), "{normal:?}");
}

#[test]
fn a_mobile_child_is_drawn_as_its_layer_chain_with_kernel_expansion_and_skips() {
    let arch =
        "mb_k3_e6,identity,mb_k5_e3,identity,mb_k3_e3,mb_k7_e6,mb_k5_e6,mb_k3_e3,mb_k7_e3,mb_k5_e6,identity";
    let Some(d) = drawn(&["--space", "mobile"], arch) else { return };
    assert_eq!(d["kind"], "chain");
    let blocks = strings(&d["blocks"]);
    assert_eq!(blocks.len(), 11 + 3, "stem, 11 layers, head, classifier");
    assert_eq!(blocks[0][0], "stem");
    assert_eq!(blocks[13][0], "classifier");
    let layers = &blocks[1..12];
    for (block, op) in layers.iter().zip(arch.split(',')) {
        match op {
            "identity" => assert_eq!(block[2], "skipped", "{block:?}"),
            _ => {
                let (k, e) = (&op[4..5], &op[7..8]);
                assert_eq!(block[1], format!("MBConv k{k} e{e}"), "{block:?}");
                assert_eq!(block[2], "chosen");
            }
        }
    }
}

#[test]
fn a_bad_svg_path_fails_without_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    // A folder that is a file: the drawing cannot be written, and nothing is left half-written.
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, "x").unwrap();
    let file = plain.join("arch.svg");
    let err = common::fails([
        "arch",
        "info",
        "--space",
        "nb201",
        "--arch",
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|",
        "--svg",
        s(&file),
    ]);
    assert!(err.contains("plain-file"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the plain file");
}

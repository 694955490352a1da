//! Space parameters from files (`space.json`, `[space_params]`, a checkpoint's state) are bounded:
//! a damaged or mistyped value is an error naming the field, never a network that takes forever to
//! build or exhausts the memory (found by fuzzing `space.json`: `nodes = 100000` ran out of memory).
use std::time::Instant;

use pwsnas_models::{Space, SpaceKind};
use serde_json::json;

#[test]
fn oversized_parameters_are_refused_at_once_naming_the_field() {
    for (space, params, field) in [
        ("nb201", json!({ "nodes": 100000 }), "nodes"),
        ("nb201", json!({ "channels": 1u64 << 40 }), "channels"),
        ("nb201", json!({ "cells_per_stage": 100000 }), "cells_per_stage"),
        ("nb201", json!({ "input_size": 1 << 20 }), "input_size"),
        ("nb201", json!({ "classes": 1u64 << 33 }), "classes"),
        ("mobile", json!({ "stages": [{ "channels": 24, "repeats": 1000000, "stride": 1 }] }), "stages"),
        ("mobile", json!({ "width": 1e9 }), "width"),
        ("mobile", json!({ "kernels": [3, 255] }), "kernels"),
        ("mobile", json!({ "head_channels": 1u64 << 30 }), "stages"),
        ("darts", json!({ "layers": 100000 }), "layers"),
        ("darts", json!({ "channels": 1u64 << 40 }), "channels"),
        ("darts", json!({ "input_size": 1 << 20 }), "input_size"),
        ("darts", json!({ "ops": ["sep_conv_101x101"] }), "ops"),
    ] {
        let start = Instant::now();
        let err = SpaceKind::from_params(space, params.clone()).unwrap_err().to_string();
        assert!(err.contains(&format!("invalid {space} parameter '{field}'")), "{params}: {err}");
        assert!(start.elapsed().as_secs_f64() < 1.0, "{params} took {:?}", start.elapsed());
        let file = json!({ "space": space, "params": params, "choices": {} });
        assert!(Space::from_json(file).is_err());
    }
    // The largest supported values still make a space.
    let big = SpaceKind::from_params("nb201", json!({ "nodes": 8 })).unwrap();
    assert_eq!(Space::full(big).choices.len(), 28);
}

//! `pwsnas export` and `pwsnas infer` end to end on a tiny synthetic search: the model (rewritten,
//! plain with `--no-optimize`, in fp16 with `--precision fp16`), its validation and the reports, and
//! a clear error for each kind of bad input (a run without retrained weights, a missing ONNX Runtime
//! library, an execution provider the library lacks or cannot register, a corrupt model, an
//! undecodable image).
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pwsnas::report::Report;
use serde_json::Value;

mod browser;
mod common;
mod onnx_check;

use common::{copy_dir, fails, ok, s};

/// A finished tiny search (made once per test binary; tests that change it work on a copy).
fn searched() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        ok([
            "--quiet",
            "search",
            "--out",
            s(&run),
            "--data",
            "synthetic:classes=4,channels=1,size=8,train=256,test=100",
            "--nodes",
            "3",
            "--channels",
            "4",
            "--cells",
            "1",
            "--warmup-epochs",
            "1",
            "--batch-size",
            "32",
            "--population",
            "4",
            "--generations",
            "2",
            "--top-k",
            "2",
            "--retrain-epochs",
            "1",
            "--val-images",
            "50",
            "--samples-per-op",
            "4",
            "--device",
            "cpu",
        ]);
        (dir, run)
    })
    .1
}

/// A copy of the search, exported once (stdout of `pwsnas --json export`).
fn exported() -> &'static (PathBuf, String) {
    static RUN: OnceLock<(tempfile::TempDir, (PathBuf, String))> = OnceLock::new();
    &RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        copy_dir(searched(), &run);
        let stdout = ok([
            "--json",
            "export",
            s(&run),
            "--latency-runs",
            "5",
            "--latency-session-ms",
            "0",
            "--latency-sessions",
            "5",
            "--warmup",
            "1",
            "--threads",
            "1",
        ]);
        (dir, (run, stdout))
    })
    .1
}

#[test]
fn export_writes_a_validated_model_and_the_reports() {
    let (run, stdout) = exported();
    let report = Report::load(&run.join("report.json")).unwrap();
    assert_eq!(report.schema_version, 1);
    let arch: Value = serde_json::from_slice(&std::fs::read(run.join("arch.json")).unwrap()).unwrap();
    assert_eq!(report.arch, arch["arch"].as_str().unwrap());

    assert!(report.parity.passed, "{:?}", report.parity.reason);
    assert!(report.parity.scaled_diff <= 1e-4 && report.parity.images > 0);
    assert_eq!(report.accuracy.test_images, 100);
    assert!(
        (report.accuracy.ort - report.accuracy.libtorch).abs() * 100.0 <= 0.1,
        "ORT {} vs libtorch {}",
        report.accuracy.ort,
        report.accuracy.libtorch
    );
    let retrained = report.accuracy.retrain_test_accuracy.expect("retrain/result.json is read");
    assert!(
        (retrained - report.accuracy.libtorch).abs() < 1e-9,
        "export's libtorch accuracy is retraining's"
    );

    assert_eq!((report.onnx.path.as_str(), report.onnx.opset), ("model.onnx", 17));
    let bytes = std::fs::read(run.join("model.onnx")).unwrap();
    assert_eq!(report.onnx.bytes, bytes.len() as u64);
    onnx_check::check(&bytes, "the exported model.onnx");
    for op in ["BatchNormalization", "Identity"] {
        assert!(!report.onnx.op_counts.contains_key(op), "{op} in {:?}", report.onnx.op_counts);
    }
    assert_eq!(report.onnx.input, "input [batch, 1, 8, 8]");
    assert_eq!((report.onnx.lowering.as_str(), report.onnx.precision.as_str()), ("optimized", "fp32"));
    assert_eq!(report.precision, None);
    // Provenance: every setting of the run and every export option, serialised.
    let settings = &report.provenance.settings;
    assert_eq!(settings["search"]["population"], 4);
    assert_eq!(settings["space_params"]["nodes"], 3);
    let export = &report.provenance.export;
    assert_eq!((export["ep"].as_str(), export["threads"].as_u64()), (Some("cpu"), Some(1)));
    assert_eq!(
        (export["lowering"].as_str(), export["precision"].as_str()),
        (Some("optimized"), Some("fp32"))
    );
    assert_eq!(
        (export["timing"]["plan"]["runs"].as_u64(), export["timing"]["sessions"].as_u64()),
        (Some(5), Some(5))
    );

    let l = &report.latency;
    assert_eq!((l.threads, l.ep.as_str(), l.libtorch_device.as_str()), (1, "cpu", "cpu"));
    for st in [&l.ort.batch1, &l.ort.batch64, &l.libtorch.batch1, &l.libtorch.batch64] {
        assert_eq!(st.runs, 5);
        assert!(
            st.min_ms > 0.0 && st.min_ms <= st.p50_ms && st.p50_ms <= st.p99_ms && st.p99_ms <= st.max_ms
        );
    }
    assert_eq!((l.ort.batch1.batch, l.ort.batch64.batch), (1, 64));
    // ONNX Runtime is timed across fresh sessions (5 here, one timed run each); the latency is the
    // mean of the session medians without the fastest and the slowest; libtorch runs one network.
    for st in [&l.ort.batch1, &l.ort.batch64] {
        let noise = st.noise.as_ref().expect("ONNX Runtime figures carry their noise");
        assert_eq!((noise.sessions, noise.session_p50_ms.len()), (5, 5));
        let mut medians = noise.session_p50_ms.clone();
        medians.sort_by(f64::total_cmp);
        assert!((st.p50_ms - medians[1..4].iter().sum::<f64>() / 3.0).abs() < 1e-12);
        assert!(noise.spread >= 0.0 && noise.busy_elsewhere.is_some());
    }
    assert!(l.libtorch.batch1.noise.is_none());
    assert!(!l.cpu.is_empty());
    // The latency table of this machine and setting predicts the batch-1 latency; the error is against it.
    let predicted = l.predicted_ms.expect("export predicts the latency from the latency table");
    assert!(predicted > 0.0 && l.latency_table.is_some());
    assert!((l.prediction_error.unwrap() - (predicted / l.ort.batch1.p50_ms - 1.0)).abs() < 1e-12);
    assert!(report.provenance.onnxruntime.starts_with("1.31"), "{}", report.provenance.onnxruntime);

    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("**passed**") && md.contains(&report.arch), "{md}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert_eq!(html.matches("<svg").count(), 6, "the architecture, latency ×2, shrink ×2, search ×1");
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    // The architecture drawn beside the model and in the page, as the page renders in a browser.
    let svg = std::fs::read_to_string(run.join("arch.svg")).unwrap();
    assert!(svg.starts_with("<svg") && html.contains(&svg), "arch.svg is the page's drawing");
    if let Some(chromium) = browser::chromium() {
        let drawings = browser::measure(&chromium, &html);
        assert_eq!(drawings.len(), 1, "{drawings:?}");
        browser::assert_clean(&drawings[0]);
        let cell = &drawings[0]["cells"][0];
        assert_eq!(cell["nodes"].as_array().unwrap().len(), 3, "a 3-node cell");
        // One drawn edge per op of the arch string other than none, with that op.
        let mut drawn: Vec<&str> =
            cell["edges"].as_array().unwrap().iter().map(|e| e[2].as_str().unwrap()).collect();
        let mut ops: Vec<&str> = report
            .arch
            .split(['|', '+'])
            .filter_map(|t| t.split_once('~').map(|(op, _)| op))
            .filter(|op| *op != "none")
            .collect();
        drawn.sort();
        ops.sort();
        assert_eq!(drawn, ops, "{}", report.arch);
    }

    // --json: events on stdout, the last one the summary.
    let last: Value = serde_json::from_str(stdout.lines().last().expect("JSON output")).unwrap();
    assert_eq!(last["event"], "export_done");
    assert_eq!(last["parity"]["passed"], true);
    assert_eq!(last["accuracy"]["test_images"], 100);
}

/// A process that keeps one core busy until it is dropped (stopped by its pid).
struct BusyLoop(std::process::Child);

impl BusyLoop {
    fn start() -> BusyLoop {
        BusyLoop(std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap())
    }
}

impl Drop for BusyLoop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_latency_measured_while_another_process_is_busy_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_dir(searched(), &run);
    let busy = BusyLoop::start();
    let out = common::pwsnas([
        "export",
        s(&run),
        "--latency-runs",
        "60",
        "--latency-sessions",
        "3",
        "--latency-session-ms",
        "200",
        "--warmup",
        "2",
        "--threads",
        "1",
    ]);
    drop(busy);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report = Report::load(&run.join("report.json")).unwrap();
    let noise = report.latency.ort.batch1.noise.as_ref().unwrap();
    assert_eq!(noise.sessions, 3);
    assert!(noise.busy_elsewhere.unwrap() > 0.1, "{noise:?}");
    assert!(
        !noise.reliable() && noise.warnings.iter().any(|w| w.contains("other processes used")),
        "{noise:?}"
    );
    assert!(
        stderr.contains("warning: the ONNX Runtime latency at batch 1")
            && stderr.contains("Measure on an idle machine"),
        "{stderr}"
    );
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("**Warning:** ONNX Runtime at batch 1") && md.contains("NOT RELIABLE"), "{md}");
}

#[test]
fn infer_classifies_images_with_the_exported_model() {
    let (run, _) = exported();
    let dir = tempfile::tempdir().unwrap();
    // An RGB image of another size: infer resizes it to 8×8 and converts it to greyscale.
    let rgb = dir.path().join("rgb.png");
    image::RgbImage::from_fn(20, 12, |x, y| image::Rgb([(x * 12) as u8, (y * 20) as u8, 90]))
        .save(&rgb)
        .unwrap();
    let grey = dir.path().join("grey.jpg");
    image::GrayImage::from_fn(8, 8, |x, y| image::Luma([((x + y) * 16) as u8])).save(&grey).unwrap();
    let model = run.join("model.onnx");

    let out: Value =
        serde_json::from_str(&ok(["--json", "infer", s(&model), s(&rgb), s(&grey), "--top", "3"])).unwrap();
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["image"], s(&rgb));
    for r in results {
        let top = r["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let p: Vec<f64> = top.iter().map(|t| t["probability"].as_f64().unwrap()).collect();
        assert!(p.windows(2).all(|w| w[0] >= w[1]) && p.iter().sum::<f64>() <= 1.0 + 1e-9, "{p:?}");
        assert!(top[0]["class"].as_str().unwrap().starts_with("class_"), "{top:?}");
    }
    // All four classes: the probabilities sum to 1. Text output names the classes.
    let out: Value = serde_json::from_str(&ok(["--json", "infer", s(&model), s(&grey)])).unwrap();
    let total: f64 =
        out["results"][0]["top"].as_array().unwrap().iter().map(|t| t["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-6, "{total}");
    let stdout = ok(["infer", s(&model), s(&grey), "--top", "2"]);
    assert!(
        stdout.contains(s(&grey)) && stdout.contains(" 1. class_") && stdout.contains(" 2. class_"),
        "{stdout}"
    );
}

#[test]
fn a_parity_failure_writes_the_reports_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_dir(searched(), &run);
    let err = fails([
        "--quiet",
        "export",
        s(&run),
        "--tolerance",
        "1e-12",
        "--latency-session-ms",
        "0",
        "--latency-runs",
        "2",
        "--warmup",
        "0",
    ]);
    assert!(err.contains("failed the parity check") && err.contains("above the tolerance"), "{err}");
    let report = Report::load(&run.join("report.json")).unwrap();
    assert!(!report.parity.passed);
    assert!(report.parity.reason.unwrap().contains("above the tolerance 1.0e-12"));
    assert!(std::fs::read_to_string(run.join("report.html")).unwrap().contains("parity FAILED"));
}

#[test]
fn export_needs_retrained_weights_and_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_dir(searched(), &run);
    std::fs::remove_file(run.join("retrain/weights.safetensors")).unwrap();
    let err = fails(["export", s(&run)]);
    assert!(err.contains("has no retrained weights") && err.contains("pwsnas train --run"), "{err}");
    assert!(!run.join("model.onnx").exists() && !run.join("report.json").exists());

    let err = fails(["export", s(dir.path())]);
    assert!(err.contains("is not a pwsnas run directory"), "{err}");
}

#[test]
fn a_missing_onnx_runtime_library_says_what_was_tried() {
    let run = searched();
    for args in [vec!["export", s(run)], vec!["infer", "model.onnx", "x.png"]] {
        let mut args = args.clone();
        args.extend(["--ort-lib", "/nonexistent/libonnxruntime.so"]);
        let err = fails(&args);
        assert!(err.contains("cannot load the ONNX Runtime library"), "{err}");
        assert!(err.contains("from --ort-lib /nonexistent/libonnxruntime.so: no such file"), "{err}");
        assert!(err.contains("cargo xtask setup"), "{err}");
    }
    // Without a flag, the library set-up installed is found (doctor shows it).
    let doctor: Value = serde_json::from_str(&ok(["--json", "doctor"])).unwrap();
    let ort = &doctor["onnxruntime"];
    assert!(ort["version"].as_str().unwrap().starts_with("1.31"), "{ort}");
    assert!(ort["providers"].as_array().unwrap().iter().any(|p| p == "CPUExecutionProvider"), "{ort}");
}

#[test]
fn the_plain_lowering_and_fp16_export_are_validated_too() {
    let (optimized_run, _) = exported();
    let optimized = Report::load(&optimized_run.join("report.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (flags, lowering, precision) in
        [(vec!["--no-optimize"], "plain", "fp32"), (vec!["--precision", "fp16"], "optimized", "fp16")]
    {
        let run = dir.path().join(lowering).join(precision);
        copy_dir(searched(), &run);
        let mut args = vec![
            "--quiet",
            "export",
            s(&run),
            "--latency-session-ms",
            "0",
            "--latency-runs",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
        ];
        args.extend(flags);
        ok(&args);
        let report = Report::load(&run.join("report.json")).unwrap();
        assert_eq!((report.onnx.lowering.as_str(), report.onnx.precision.as_str()), (lowering, precision));
        assert!(report.parity.passed, "{lowering} {precision}: {:?}", report.parity.reason);
        let bytes = std::fs::read(run.join("model.onnx")).unwrap();
        onnx_check::check(&bytes, &format!("the {lowering} {precision} model.onnx"));
        // Same ports and metadata whatever the graph inside.
        assert_eq!(
            (report.onnx.input.as_str(), report.onnx.output.as_str()),
            (optimized.onnx.input.as_str(), optimized.onnx.output.as_str())
        );
        assert_eq!(report.onnx.metadata, optimized.onnx.metadata);
        match precision {
            "fp16" => {
                assert_eq!(report.parity.tolerance, pwsnas::export::DEFAULT_FP16_TOLERANCE);
                let check = report.precision.as_ref().expect("an fp16 export is judged by its accuracy");
                assert_eq!(check.max_accuracy_loss_pp, pwsnas::export::DEFAULT_MAX_ACCURACY_LOSS_PP);
                assert!((check.accuracy_loss_pp + report.accuracy.difference_pp).abs() < 1e-12);
                assert_eq!(check.passed, check.accuracy_loss_pp <= check.max_accuracy_loss_pp);
                assert!(report.onnx.op_counts["Cast"] == 2, "{:?}", report.onnx.op_counts);
                // Half the bytes for the weights.
                assert!(
                    report.onnx.bytes < optimized.onnx.bytes * 3 / 4,
                    "{} vs {}",
                    report.onnx.bytes,
                    optimized.onnx.bytes
                );
                let md = std::fs::read_to_string(run.join("report.md")).unwrap();
                assert!(md.contains("| fp16 accuracy loss against libtorch in fp32 |"), "{md}");
            }
            _ => {
                assert_eq!(report.parity.tolerance, pwsnas::export::DEFAULT_TOLERANCE);
                // The plain graph has the variadic Sums the rewrites turn into Adds.
                assert!(
                    report.onnx.op_counts.get("Sum") >= optimized.onnx.op_counts.get("Sum"),
                    "{:?}",
                    report.onnx.op_counts
                );
                assert!(!optimized.onnx.op_counts.contains_key("Sum"), "{:?}", optimized.onnx.op_counts);
            }
        }
    }
}

#[test]
fn cuda_is_a_clear_error_without_the_provider_or_without_a_gpu() {
    let (run, _) = exported();
    let model = run.join("model.onnx");
    let doctor: Value = serde_json::from_str(&ok(["--json", "doctor"])).unwrap();
    let libs = doctor["onnxruntime_libraries"].as_array().unwrap();
    let has_cuda =
        |l: &Value| l["providers"].as_array().unwrap().iter().any(|p| p == "CUDAExecutionProvider");
    // The CPU build named explicitly: the provider is not compiled in.
    let cpu = libs.iter().find(|l| l["source"] == "build-time path").expect("set-up's CPU build is listed");
    assert!(!has_cuda(cpu), "{cpu}");
    let cpu_lib = cpu["path"].as_str().unwrap();
    for args in [
        vec!["export", s(run), "--ep", "cuda", "--ort-lib", cpu_lib],
        vec!["infer", s(&model), "x.png", "--ep", "cuda", "--ort-lib", cpu_lib],
    ] {
        let err = fails(&args);
        assert!(
            err.contains("--ep cuda") && err.contains("has no CUDAExecutionProvider compiled in"),
            "{err}"
        );
        assert!(err.contains("use --ep cpu") && err.contains("cargo xtask setup --gpu"), "{err}");
    }
    // Without a flag, --ep cuda loads set-up's GPU build.
    let gpu = libs.iter().find(|l| l["source"] == "build-time GPU path");
    let installed = gpu.is_some_and(|l| l["error"].is_null());
    let gpus = doctor["nvidia_gpus"].as_array().unwrap();
    let infer = ["--json", "infer", s(&model), "x.png", "--ep", "cuda"];
    match (installed, gpus.is_empty()) {
        (false, _) => {
            let err = fails(infer);
            assert!(
                err.contains("cannot load the ONNX Runtime library")
                    && err.contains("cargo xtask setup --gpu"),
                "{err}"
            );
        }
        (true, true) => {
            assert!(has_cuda(gpu.unwrap()), "the GPU build has the CUDA provider compiled in: {gpu:?}");
            let err = fails(infer);
            assert!(
                err.contains("CUDAExecutionProvider is compiled into")
                    && err.contains("registering it failed"),
                "{err}"
            );
            assert!(err.contains("no NVIDIA GPU is visible") && err.contains("never falls back"), "{err}");
        }
        (true, false) => {
            // A GPU machine: the model runs on the CUDA provider (the image is one infer writes).
            let dir = tempfile::tempdir().unwrap();
            let img = dir.path().join("x.png");
            image::GrayImage::new(8, 8).save(&img).unwrap();
            let out: Value =
                serde_json::from_str(&ok(["--json", "infer", s(&model), s(&img), "--ep", "cuda"])).unwrap();
            assert_eq!(out["results"].as_array().unwrap().len(), 1);
        }
    }
}

#[test]
fn infer_rejects_a_corrupt_model_and_an_undecodable_image() {
    let (run, _) = exported();
    let dir = tempfile::tempdir().unwrap();
    let model = run.join("model.onnx");
    let bytes = std::fs::read(&model).unwrap();
    let image = dir.path().join("ok.png");
    image::GrayImage::new(8, 8).save(&image).unwrap();

    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, b"this is not a model").unwrap();
    let truncated = dir.path().join("truncated.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for bad in [&garbage, &truncated] {
        let err = fails(["infer", s(bad), s(&image)]);
        assert!(
            err.contains(&format!("cannot use {} as a model: not an ONNX model", bad.display())),
            "{err}"
        );
    }
    let err = fails(["infer", s(&dir.path().join("missing.onnx")), s(&image)]);
    assert!(err.contains("cannot read the model") && err.contains("missing.onnx"), "{err}");

    let not_image = dir.path().join("photo.png");
    std::fs::write(&not_image, b"just text").unwrap();
    let err = fails(["infer", s(&model), s(&image), s(&not_image)]);
    assert!(err.contains(&format!("{} is not a readable image", not_image.display())), "{err}");
    let err = fails(["infer", s(&model), s(&dir.path().join("absent.png"))]);
    assert!(err.contains("cannot read the image") && err.contains("absent.png"), "{err}");
}

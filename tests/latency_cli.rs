//! Latency-aware search end to end on tiny synthetic data: latency tables reused on a match and
//! rebuilt on a mismatch, a table of the darts space predicting a genotype, `--max-latency-ms` keeping every evaluated child within budget, `pwsnas
//! export` reporting the prediction error, and `pwsnas compare` tabulating runs and refusing runs
//! measured with different settings. Every test keeps its tables in a temporary `PWSNAS_HOME`.
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

mod common;

use common::{copy_dir, fails_in as fails, json, ok_in as ok, s};

/// The tiny space of these tests: 3-node nb201 (125 children), C=4, N=1, 1×8×8 inputs, 4 classes.
const SPACE: [&str; 14] = [
    "--space",
    "nb201",
    "--nodes",
    "3",
    "--channels",
    "4",
    "--cells",
    "1",
    "--input-size",
    "8",
    "--input-channels",
    "1",
    "--classes",
    "4",
];

/// `pwsnas --json latency-table` on the tiny space with a short measurement; the printed object.
fn table(home: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--json", "latency-table"];
    args.extend(SPACE);
    args.extend(["--runs", "5", "--warmup", "1"]);
    args.extend(extra);
    serde_json::from_str(&ok(home, &args)).expect("latency-table --json prints one JSON object")
}

#[test]
fn a_table_is_reused_on_a_match_and_rebuilt_on_a_mismatch() {
    let home = tempfile::tempdir().unwrap();
    let first = table(home.path(), &["--threads", "1"]);
    assert_eq!(first["reused"], false);
    let path = PathBuf::from(first["path"].as_str().unwrap());
    assert!(path.starts_with(home.path().join("latency")), "{}", path.display());
    let t = &first["table"];
    assert_eq!(t["machine"]["threads"], 1);
    assert_eq!(t["machine"]["ep"], "cpu");
    assert_eq!(t["space"]["params"]["input_size"], 8);
    let pieces: Vec<&str> =
        t["entries"].as_array().unwrap().iter().map(|e| e["piece"].as_str().unwrap()).collect();
    for piece in [
        "stem",
        "reduction1",
        "reduction2",
        "head",
        "stage0/nor_conv_3x3",
        "stage2/avg_pool_3x3",
        "stage1/sum2",
    ] {
        assert!(pieces.contains(&piece), "{piece} missing from {pieces:?}");
    }
    assert!(t["entries"].as_array().unwrap().iter().all(|e| e["ms"].as_f64().unwrap() >= 0.0));
    assert_eq!(
        t["calibration"].as_array().unwrap().len(),
        5 + 10,
        "a calibration child per op, and 10 random"
    );

    // The same space and machine: the same table, not measured again.
    let again = table(home.path(), &["--threads", "1"]);
    assert_eq!(again["reused"], true);
    assert_eq!(again["path"], first["path"]);
    assert_eq!(again["table"], first["table"]);

    // Another thread count is another machine setting: measured, kept beside the first.
    let two = table(home.path(), &["--threads", "2"]);
    assert_eq!(two["reused"], false);
    assert_ne!(two["path"], first["path"]);
    assert_eq!(two["table"]["machine"]["threads"], 2);
    assert!(path.exists());

    // A table measured on another CPU is not reused: it is measured again, in its place.
    let mut foreign = json(&path);
    foreign["machine"]["cpu"] = "Another CPU (64 logical CPUs)".into();
    std::fs::write(&path, serde_json::to_vec(&foreign).unwrap()).unwrap();
    let rebuilt = table(home.path(), &["--threads", "1"]);
    assert_eq!(rebuilt["reused"], false);
    let why = rebuilt["mismatches"].to_string();
    assert!(why.contains("cpu: Another CPU (64 logical CPUs) vs"), "{why}");
    assert_eq!(rebuilt["path"], first["path"]);
    assert_eq!(json(&path)["machine"], first["table"]["machine"]);

    // --rebuild measures even on a match; --arch adds the prediction piece by piece.
    let arch = "|nor_conv_3x3~0|+|avg_pool_3x3~0|skip_connect~1|";
    let forced = table(home.path(), &["--threads", "1", "--rebuild", "--arch", arch]);
    assert_eq!(forced["reused"], false);
    let p = &forced["prediction"];
    let sum: f64 = p["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["ms"].as_f64().unwrap() * x["count"].as_f64().unwrap())
        .sum();
    assert!((p["ms"].as_f64().unwrap() - sum - p["base_ms"].as_f64().unwrap()).abs() < 1e-9, "{p}");
}

/// The darts space at a tiny size: C=2, L=4 (reduction cells 1 and 2, so stage 1 has only its
/// reduction cell), 1×8×8 inputs, 3 classes.
const DARTS: [&str; 12] = [
    "--space",
    "darts",
    "--channels",
    "2",
    "--layers",
    "4",
    "--input-size",
    "8",
    "--input-channels",
    "1",
    "--classes",
    "3",
];

#[test]
fn a_darts_table_times_the_pieces_of_the_evaluation_network_and_predicts_genotypes() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["--json", "latency-table"];
    args.extend(DARTS);
    args.extend(["--runs", "5", "--warmup", "1", "--threads", "1", "--arch", "DARTS_V2"]);
    let out: Value = serde_json::from_str(&ok(home.path(), &args)).unwrap();
    let t = &out["table"];
    let pieces: Vec<&str> =
        t["entries"].as_array().unwrap().iter().map(|e| e["piece"].as_str().unwrap()).collect();
    for piece in [
        "stem",
        "cell0/pre0",
        "cell3/pre0",
        "reduce1/skip_connect",
        "reduce2/max_pool_3x3",
        "stage1/sep_conv_3x3",
        "stage2/avg_pool_3x3",
        "stage0/sum2",
        "stage2/concat",
        "head",
    ] {
        assert!(pieces.contains(&piece), "{piece} missing from {pieces:?}");
    }
    assert!(!pieces
        .iter()
        .any(|p| p.ends_with("/none") || p.starts_with("stage") && p.ends_with("skip_connect")));
    // Calibration children are genotypes: 7 ops in rotation on each node's two latest inputs, and
    // 10 random.
    let calibration = t["calibration"].as_array().unwrap();
    assert_eq!(calibration.len(), 7 + 10);
    assert!(calibration.iter().all(|c| c["arch"].as_str().unwrap().starts_with("Genotype(normal=[(")));

    let p = &out["prediction"];
    let listed: Vec<(&str, u64)> = p["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["piece"].as_str().unwrap(), x["count"].as_u64().unwrap()))
        .collect();
    // DARTS_V2's reduction cell: five max pools, on input 0 or 1, computed once per input.
    assert!(listed.contains(&("reduce1/max_pool_3x3", 2)), "{listed:?}");
    assert!(listed.contains(&("stage0/sum2", 4)), "{listed:?}");
    let sum: f64 = p["pieces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["ms"].as_f64().unwrap() * x["count"].as_f64().unwrap())
        .sum();
    assert!((p["ms"].as_f64().unwrap() - sum - p["base_ms"].as_f64().unwrap()).abs() < 1e-9, "{p}");
    let range = &out["space_range"];
    assert_eq!((range["sampled"].as_bool(), range["children"].as_u64()), (Some(true), Some(5000)));
    assert!(range["min_ms"].as_f64().unwrap() <= range["max_ms"].as_f64().unwrap());
}

#[test]
fn bad_latency_requests_are_refused_clearly() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["latency-table"];
    args.extend(SPACE);
    let err = fails(home.path(), [args.as_slice(), &["--arch", "|nor_conv_9x9~0|+|none~0|none~1|"]].concat());
    assert!(err.contains("--arch") && err.contains("nor_conv_9x9"), "{err}");
    let out = home.path().join("run");
    let err = fails(
        home.path(),
        ["search", "--out", s(&out), "--data", common::DATA, "--max-latency-ms", "0", "--device", "cpu"],
    );
    assert!(err.contains("max_latency_ms must be a positive number"), "{err}");
}

/// `pwsnas bench latency` predicts and times the same drawn children at each thread count, each
/// against its own table, and prints the error distribution with the ISA; bad counts are refused.
#[test]
fn the_latency_benchmark_checks_predictions_against_children_timed_whole() {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["--json", "bench", "latency"];
    args.extend(SPACE);
    args.extend(["--children", "3", "--threads", "1,2"]);
    let printed = ok(home.path(), &args);
    let results: Vec<Value> = printed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(results.len(), 2, "{printed}");
    let mut tables = Vec::new();
    for (r, threads) in results.iter().zip([1, 2]) {
        assert_eq!(r["bench"], "latency");
        assert_eq!(r["threads"], threads);
        assert!(["AVX-512", "AVX2", "SSE4.2 or less"].contains(&r["isa"].as_str().unwrap()), "{r}");
        let rows = r["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        let mut errors = Vec::new();
        for row in rows {
            let (p, m) = (row["predicted_ms"].as_f64().unwrap(), row["measured_ms"].as_f64().unwrap());
            assert!(p > 0.0 && m > 0.0, "{row}");
            assert!((row["error"].as_f64().unwrap() - (p / m - 1.0)).abs() < 1e-9, "{row}");
            errors.push((p / m - 1.0).abs());
        }
        errors.sort_by(f64::total_cmp);
        assert!((r["worst_abs_error"].as_f64().unwrap() - errors[2]).abs() < 1e-9, "{r}");
        assert!((r["median_abs_error"].as_f64().unwrap() - errors[1]).abs() < 1e-9, "{r}");
        tables.push(r["table"].as_str().unwrap().to_string());
    }
    assert_ne!(tables[0], tables[1], "each thread count has its own table");
    // The same seed draws the same children at both thread counts.
    let archs =
        |r: &Value| r["rows"].as_array().unwrap().iter().map(|x| x["arch"].clone()).collect::<Vec<_>>();
    assert_eq!(archs(&results[0]), archs(&results[1]));

    let mut bad = vec!["bench", "latency"];
    bad.extend(SPACE);
    let err = fails(home.path(), [bad.as_slice(), &["--threads", "0"]].concat());
    assert!(err.contains("--threads must list thread counts of at least 1"), "{err}");
    let err = fails(home.path(), [bad.as_slice(), &["--children", "0"]].concat());
    assert!(err.contains("--children must be at least 1"), "{err}");
}

/// Two tiny searches on the same data and supernet: `unlimited` without a latency budget (the space
/// is small enough that every child is evaluated, each with its predicted latency), and `budget`
/// (a copy of it searched again with `--max-latency-ms` at the median prediction); both exported with
/// one thread. Made once per test binary.
struct Runs {
    home: tempfile::TempDir,
    unlimited: PathBuf,
    budget: PathBuf,
    max_ms: f64,
}

fn search_args(out: &Path) -> Vec<String> {
    let mut args = common::set(common::tiny(out), "--population", "25");
    args = common::set(args, "--generations", "5");
    args.extend(["--nodes", "3", "--shrink", "none", "--quiet"].map(String::from));
    args
}

fn runs() -> &'static Runs {
    static RUNS: OnceLock<Runs> = OnceLock::new();
    RUNS.get_or_init(|| {
        let home = tempfile::tempdir().unwrap();
        let unlimited = home.path().join("unlimited");
        let args = search_args(&unlimited);
        ok(home.path(), args.iter().map(String::as_str).collect::<Vec<_>>());
        let mut predicted: Vec<f64> = json(&unlimited.join("search.json"))["evaluated"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["predicted_latency_ms"].as_f64().expect("every child has a predicted latency"))
            .collect();
        predicted.sort_by(f64::total_cmp);
        let max_ms = predicted[predicted.len() / 2];

        let budget = home.path().join("budget");
        copy_dir(&unlimited, &budget);
        let mut args = search_args(&budget);
        args.extend(["--max-latency-ms".into(), max_ms.to_string(), "--force".into()]);
        ok(home.path(), args.iter().map(String::as_str).collect::<Vec<_>>());
        for run in [&unlimited, &budget] {
            ok(
                home.path(),
                [
                    "--quiet",
                    "export",
                    s(run),
                    "--threads",
                    "1",
                    "--latency-session-ms",
                    "0",
                    "--latency-runs",
                    "20",
                    "--warmup",
                    "2",
                ],
            );
        }
        Runs { home, unlimited, budget, max_ms }
    })
}

fn evaluated(run: &Path) -> Vec<(String, f64, f64)> {
    json(&run.join("search.json"))["evaluated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["arch"].as_str().unwrap().to_string(),
                e["accuracy"].as_f64().unwrap(),
                e["predicted_latency_ms"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_latency_budget_keeps_every_evaluated_child_within_it() {
    let r = runs();
    let all = evaluated(&r.unlimited);
    assert_eq!(all.len(), 125, "the unlimited search evaluates every child");
    let search = json(&r.unlimited.join("search.json"));
    let table = search["constraints"]["latency_table"]["path"].as_str().unwrap();
    assert!(Path::new(table).starts_with(r.home.path().join("latency")), "{table}");
    assert!(r.unlimited.join("latency_table.json").exists(), "the run keeps the table it predicted with");

    let within = evaluated(&r.budget);
    let search = json(&r.budget.join("search.json"));
    assert_eq!(search["constraints"]["max_latency_ms"].as_f64().unwrap(), r.max_ms);
    assert!(within.iter().all(|(_, _, ms)| *ms <= r.max_ms), "{within:?}");
    let expected: Vec<&(String, f64, f64)> = all.iter().filter(|(_, _, ms)| *ms <= r.max_ms).collect();
    assert_eq!(
        within.iter().collect::<Vec<_>>(),
        expected,
        "exactly the children within budget, evaluated alike"
    );
    assert_eq!(search["rejected"].as_u64().unwrap() as usize, 125 - within.len());

    let winner = |run: &Path| json(&run.join("arch.json"));
    let (free, tight) = (winner(&r.unlimited), winner(&r.budget));
    let (free_ms, tight_ms) =
        (free["predicted_latency_ms"].as_f64().unwrap(), tight["predicted_latency_ms"].as_f64().unwrap());
    assert!(tight_ms <= r.max_ms);
    if free_ms <= r.max_ms {
        assert_eq!(tight["arch"], free["arch"], "the unlimited winner is within budget, so it wins again");
    } else {
        assert!(tight_ms < free_ms, "the budget winner is predicted faster: {tight_ms} vs {free_ms}");
    }
}

#[test]
fn export_reports_the_predicted_latency_and_its_error() {
    let r = runs();
    for run in [&r.unlimited, &r.budget] {
        let report = json(&run.join("report.json"));
        let l = &report["latency"];
        let predicted = l["predicted_ms"].as_f64().expect("a predicted latency");
        let measured = l["ort"]["batch1"]["p50_ms"].as_f64().unwrap();
        let error = l["prediction_error"].as_f64().unwrap();
        assert!((error - (predicted / measured - 1.0)).abs() < 1e-12, "{l}");
        // Exported with one thread: a table for that setting, not the search's.
        let table = l["latency_table"].as_str().unwrap();
        assert_eq!(json(Path::new(table))["machine"]["threads"], 1, "{table}");
        let md = std::fs::read_to_string(run.join("report.md")).unwrap();
        assert!(md.contains("The latency table predicted"), "{md}");
    }
    // The run's own space from --run, at the search's setting: the search's table, reused.
    let shown: Value =
        serde_json::from_str(&ok(r.home.path(), ["--json", "latency-table", "--run", s(&r.unlimited)]))
            .unwrap();
    assert_eq!(shown["reused"], true);
    assert_eq!(shown["table"], json(&r.unlimited.join("latency_table.json")));
}

#[test]
fn compare_tabulates_runs_and_refuses_mixed_settings() {
    let r = runs();
    let out = r.home.path().join("cmp");
    let stdout = ok(r.home.path(), ["compare", s(&r.unlimited), s(&r.budget), "--out", s(&out)]);
    assert!(
        stdout.contains(
            "| run | acc. libtorch | acc. ORT | copies | supernet params | sharing | p50 ms (b1) |"
        ),
        "{stdout}"
    );
    for f in ["compare.md", "compare.csv", "compare.json", "compare.html"] {
        assert!(out.join(f).exists(), "{f}");
    }
    let c = json(&out.join("compare.json"));
    let rows = c["runs"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|row| row["pareto"] == true));
    for (row, run) in rows.iter().zip([&r.unlimited, &r.budget]) {
        let report = json(&run.join("report.json"));
        assert_eq!(row["latency_p50_ms"], report["latency"]["ort"]["batch1"]["p50_ms"]);
        assert_eq!(row["predicted_ms"], report["latency"]["predicted_ms"]);
        assert_eq!(row["accuracy_ort"], report["accuracy"]["ort"]);
    }
    assert_eq!((rows[0]["budget_ms"].clone(), rows[1]["budget_ms"].as_f64()), (Value::Null, Some(r.max_ms)));
    assert_eq!(std::fs::read_to_string(out.join("compare.csv")).unwrap().lines().count(), 3);
    let html = std::fs::read_to_string(out.join("compare.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Accuracy against latency"));

    // The same run as measured on another machine with other threads cannot be compared unless asked for.
    let other = r.home.path().join("other-machine");
    copy_dir(&r.budget, &other);
    let mut report = json(&other.join("report.json"));
    report["latency"]["cpu"] = "Another CPU (64 logical CPUs)".into();
    report["latency"]["threads"] = 3.into();
    std::fs::write(other.join("report.json"), serde_json::to_vec(&report).unwrap()).unwrap();
    let err = fails(r.home.path(), ["compare", s(&r.unlimited), s(&other), s(&r.budget), "--out", s(&out)]);
    assert!(err.contains("different machines or settings"), "{err}");
    let cpu = json(&r.unlimited.join("report.json"))["latency"]["cpu"].as_str().unwrap().to_string();
    let (a, b, c) = (s(&r.unlimited), s(&other), s(&r.budget));
    assert!(
        err.contains(&format!("CPU differs: {cpu} in {a}, {c}; Another CPU (64 logical CPUs) in {b}")),
        "{err}"
    );
    assert!(err.contains(&format!("threads differs: 1 in {a}, {c}; 3 in {b}")), "{err}");
    assert!(err.contains("--allow-mixed"), "{err}");
    ok(r.home.path(), ["compare", a, b, "--out", s(&out), "--allow-mixed"]);
    let mixed = json(&out.join("compare.json"))["mixed"].clone();
    assert_eq!(mixed.as_array().unwrap().len(), 2, "{mixed}");

    let err = fails(r.home.path(), ["compare", s(&r.unlimited), s(r.home.path())]);
    assert!(err.contains("has no report.json") && err.contains("pwsnas export"), "{err}");
}

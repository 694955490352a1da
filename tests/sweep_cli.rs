//! `pwsnas sweep` without running runs: bad plans and flags are refused with one line naming the
//! fault (and leave no sweep directory behind), `--slurm --emit-only` writes the job-array
//! script, `--k8s` a Kubernetes Indexed Job that parses and carries the right command and
//! completions, task indices past the plan are refused whichever way they arrive.
mod common;
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use yaml_rust2::{Yaml, YamlLoader};

const PLAN: &str = r#"
[base]
data = "synthetic:classes=4,channels=1,size=8,train=384,test=96"
[base.space_params]
channels = 4
[grid]
sampler = ["uniform", "fair"]
"shrink.metric" = ["none", "angle"]
[run]
threads = 2
"#;

fn write_plan(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    s(&path).to_string()
}

/// pwsnas with extra environment variables.
fn pwsnas_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pwsnas"))
        .args(args)
        .envs(env.iter().copied())
        .env("PWSNAS_HOME", test_home())
        .output()
        .expect("pwsnas runs")
}

/// The one-line error of a failed command.
fn error_of(out: &Output) -> String {
    assert!(!out.status.success(), "should have failed: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn bad_plans_and_flags_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let cases = [
        ("[base]\nseed = 1\n", "the [grid] is empty"),
        ("[grid]\nseed = [0]\nseed = [1]\n", "line 3, column 1: duplicate key"),
        (
            "[grid]\n\"shrink.metrc\" = [\"angle\"]\n",
            "[grid] shrink.metrc = \"angle\": unknown field `metrc`",
        ),
        (
            "[grid]\n\"retrain.epochs\" = [\"two\"]\n",
            "[grid] retrain.epochs = \"two\": invalid type: string \"two\"",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let plan = write_plan(dir.path(), &format!("bad{i}.toml"), text);
        let err = error_of(&pwsnas_env(&["sweep", &plan, "--out", s(&out)], &[]));
        assert!(err.contains(&format!("error: sweep plan {plan}: ")) && err.contains(expected), "{err}");
        assert!(!out.exists(), "a refused plan leaves no sweep directory");
    }

    let plan = write_plan(dir.path(), "plan.toml", PLAN);
    let empty = tempfile::tempdir().unwrap();
    let err =
        error_of(&pwsnas_env(&["sweep", &plan, "--out", s(&out), "--slurm"], &[("PATH", s(empty.path()))]));
    assert!(
        err.contains("sbatch, which is not on PATH") && err.contains("apt-get install slurm-client"),
        "{err}"
    );
    assert!(!out.exists());

    let err = error_of(&pwsnas_env(&["sweep", &plan, "--out", s(&out), "--jobs", "0"], &[]));
    assert!(err.contains("--jobs 0"), "{err}");
    let err = error_of(&pwsnas_env(&["sweep", "status", s(dir.path())], &[]));
    assert!(err.contains("is not a sweep directory (no sweep.json)"), "{err}");
}

#[test]
fn emit_only_writes_the_job_array_and_k8s_an_indexed_job() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    let plan = write_plan(dir.path(), "plan.toml", PLAN);
    let args =
        ["sweep", &plan, "--out", s(&out), "--slurm", "--emit-only", "--slurm-args", "--partition=gpu"];
    ok(args);
    let script = std::fs::read_to_string(out.join("slurm/sweep.sbatch")).unwrap();
    let abs = std::path::absolute(&out).unwrap();
    for line in [
        "#SBATCH --array=0-3".to_string(),
        "#SBATCH --cpus-per-task=2".to_string(),
        format!("#SBATCH --output={}/logs/slurm-%A_%a.out", abs.display()),
        format!("exec {} sweep task {}", env!("CARGO_BIN_EXE_pwsnas"), abs.display()),
    ] {
        assert!(script.lines().any(|l| l == line), "missing {line}:\n{script}");
    }
    assert!(!out.join("slurm/jobs.json").exists(), "--emit-only submits nothing");
    let manifest: serde_json::Value = json(&out.join("sweep.json"));
    let names: Vec<&str> =
        manifest["plan"]["runs"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "sampler=uniform,shrink.metric=none",
            "sampler=uniform,shrink.metric=angle",
            "sampler=fair,shrink.metric=none",
            "sampler=fair,shrink.metric=angle"
        ]
    );
    assert!(out.join("configs/sampler=fair,shrink.metric=angle.toml").exists());

    ok([
        "sweep",
        &plan,
        "--out",
        s(&out),
        "--k8s",
        "--jobs",
        "3",
        "--k8s-image",
        "registry.example/pwsnas:1",
        "--k8s-claim",
        "nas-data",
    ]);
    let text = std::fs::read_to_string(out.join("k8s/job.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("job.yaml is YAML");
    let job = &docs[0];
    assert_eq!(job["apiVersion"].as_str(), Some("batch/v1"));
    assert_eq!(job["kind"].as_str(), Some("Job"));
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    assert_eq!(spec["completions"].as_i64(), Some(4));
    assert_eq!(spec["parallelism"].as_i64(), Some(3));
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
    let container = &pod["containers"][0];
    assert_eq!(container["image"].as_str(), Some("registry.example/pwsnas:1"));
    let command: Vec<&str> = container["command"].as_vec().unwrap().iter().filter_map(Yaml::as_str).collect();
    assert_eq!(command, ["pwsnas", "sweep", "task", "/sweep"]);
    assert_eq!(container["resources"]["requests"]["cpu"].as_str(), Some("2"));
    assert_eq!(container["volumeMounts"][0]["mountPath"].as_str(), Some("/sweep"));
    assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as_str(), Some("nas-data"));
    assert_eq!(job["metadata"]["name"].as_str(), Some("pwsnas-sweep-sweep"));
    assert!(!out.join("runs").exists(), "--k8s and --emit-only run nothing here");

    // The index of a task past the plan is refused, from the flag or either scheduler's variable.
    for env in [vec![], vec![("SLURM_ARRAY_TASK_ID", "4")], vec![("JOB_COMPLETION_INDEX", "7")]] {
        let index: Vec<&str> = if env.is_empty() { vec!["--index", "4"] } else { vec![] };
        let mut args = vec!["sweep", "task", s(&out)];
        args.extend(index);
        let err = error_of(&pwsnas_env(&args, &env));
        assert!(err.contains("is past the plan's 4 runs (indices 0-3)"), "{err}");
    }
    let err = error_of(&pwsnas_env(&["sweep", "task", s(&out)], &[]));
    assert!(err.contains("no task index"), "{err}");

    let status = ok(["sweep", "status", s(&out)]);
    assert_eq!(status.matches(" pending ").count(), 4, "{status}");
    assert!(status.contains("4 runs: 0 done, 0 running, 0 failed, 4 pending"), "{status}");
    let err = error_of(&pwsnas_env(&["sweep", "report", s(&out)], &[]));
    assert!(err.contains("no run of") && err.contains("is done yet"), "{err}");

    let other = write_plan(dir.path(), "other.toml", &PLAN.replace("threads = 2", "threads = 1"));
    let err = error_of(&pwsnas_env(&["sweep", &other, "--out", s(&out)], &[]));
    assert!(err.contains("holds another sweep") && err.contains("[run] threads: 2 → 1"), "{err}");
}

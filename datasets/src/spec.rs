//! The `--data` syntax: which dataset to load, as a value that parses from and prints to a string.
//!
//! Forms: `fashion-mnist`, `mnist:PATH`, `cifar10:PATH`, `cifar100:PATH`, `folder:PATH`,
//! `synthetic` and `synthetic:KEY=VALUE,…` with keys `classes`, `channels`, `size`, `train`, `test`
//! and `seed` (any subset; the rest keep their defaults). [`DataSpec`]'s `Display` writes the form
//! `FromStr` reads (synthetic always with every key), so a spec recorded in `run.json` reloads
//! the same data.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::DataError;
use crate::synthetic::SyntheticSpec;

/// Which dataset to load; see the module documentation for the string forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// Fashion-MNIST from the first of the places [`crate::fashion_mnist_dir`] searches.
    FashionMnist,
    /// An MNIST-style IDX folder.
    Mnist(PathBuf),
    /// The binary version of CIFAR-10.
    Cifar10(PathBuf),
    /// The binary version of CIFAR-100 (fine labels).
    Cifar100(PathBuf),
    /// A folder of class folders of images.
    Folder(PathBuf),
    /// Generated data.
    Synthetic(SyntheticSpec),
}

impl FromStr for DataSpec {
    type Err = DataError;

    fn from_str(input: &str) -> Result<Self, DataError> {
        let bad = |reason: String| DataError::BadSpec { input: input.to_string(), reason };
        let s = input.trim();
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        let kind = kind.to_ascii_lowercase();
        let path = |arg: Option<&str>| match arg {
            Some(p) if !p.trim().is_empty() => Ok(PathBuf::from(p.trim())),
            _ => Err(bad(format!("{kind} needs a folder: {kind}:PATH"))),
        };
        match kind.as_str() {
            "fashion-mnist" => match arg {
                None => Ok(DataSpec::FashionMnist),
                Some(_) => {
                    Err(bad("fashion-mnist takes no path (it is found by `cargo xtask setup`); for a copy \
                     elsewhere use mnist:PATH or set PWSNAS_FASHION_MNIST"
                        .into()))
                }
            },
            "mnist" => Ok(DataSpec::Mnist(path(arg)?)),
            "cifar10" => Ok(DataSpec::Cifar10(path(arg)?)),
            "cifar100" => Ok(DataSpec::Cifar100(path(arg)?)),
            "folder" => Ok(DataSpec::Folder(path(arg)?)),
            "synthetic" => parse_synthetic(arg.unwrap_or("")).map(DataSpec::Synthetic).map_err(bad),
            "" => Err(bad("it is empty".into())),
            other => Err(bad(format!("unknown dataset kind {other:?}"))),
        }
    }
}

fn parse_synthetic(args: &str) -> Result<SyntheticSpec, String> {
    let mut spec = SyntheticSpec::default();
    let mut seen: Vec<&str> = Vec::new();
    for item in args.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (key, value) = item.split_once('=').ok_or_else(|| format!("{item:?} is not KEY=VALUE"))?;
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(format!("key {key:?} is given twice"));
        }
        let number = || value.parse::<u64>().map_err(|_| format!("{key}={value:?} is not a whole number"));
        let size =
            || number().and_then(|v| usize::try_from(v).map_err(|_| format!("{key}={v} is too large")));
        match key {
            "classes" => spec.classes = size()?,
            "channels" => spec.channels = size()?,
            "size" => spec.size = size()?,
            "train" => spec.train = size()?,
            "test" => spec.test = size()?,
            "seed" => spec.seed = number()?,
            _ => {
                return Err(format!(
                    "unknown synthetic key {key:?} (known: classes, channels, size, train, test, seed)"
                ))
            }
        }
        seen.push(key);
    }
    Ok(spec)
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::FashionMnist => f.write_str("fashion-mnist"),
            DataSpec::Mnist(p) => write!(f, "mnist:{}", p.display()),
            DataSpec::Cifar10(p) => write!(f, "cifar10:{}", p.display()),
            DataSpec::Cifar100(p) => write!(f, "cifar100:{}", p.display()),
            DataSpec::Folder(p) => write!(f, "folder:{}", p.display()),
            DataSpec::Synthetic(s) => write!(
                f,
                "synthetic:classes={},channels={},size={},train={},test={},seed={}",
                s.classes, s.channels, s.size, s.train, s.test, s.seed
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("fashion-mnist".parse::<DataSpec>().unwrap(), DataSpec::FashionMnist);
        assert_eq!("mnist:/d/m".parse::<DataSpec>().unwrap(), DataSpec::Mnist("/d/m".into()));
        assert_eq!("cifar10:c".parse::<DataSpec>().unwrap(), DataSpec::Cifar10("c".into()));
        assert_eq!("CIFAR100:c".parse::<DataSpec>().unwrap(), DataSpec::Cifar100("c".into()));
        assert_eq!("folder:C:\\imgs".parse::<DataSpec>().unwrap(), DataSpec::Folder("C:\\imgs".into()));
        assert_eq!("synthetic".parse::<DataSpec>().unwrap(), DataSpec::Synthetic(SyntheticSpec::default()));
        assert_eq!(
            "synthetic:classes=4,channels=1,size=8,train=256,test=64".parse::<DataSpec>().unwrap(),
            DataSpec::Synthetic(SyntheticSpec {
                classes: 4,
                channels: 1,
                size: 8,
                train: 256,
                test: 64,
                seed: 0
            })
        );
        assert_eq!(
            "synthetic: seed = 9 ,".parse::<DataSpec>().unwrap(),
            DataSpec::Synthetic(SyntheticSpec { seed: 9, ..Default::default() })
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "fashion-mnist",
            "mnist:/data/mnist",
            "cifar10:rel/c10",
            "cifar100:/x",
            "folder:/a b/c",
            "synthetic",
            "synthetic:size=8,seed=12345678901",
        ] {
            let spec: DataSpec = s.parse().unwrap();
            assert_eq!(spec.to_string().parse::<DataSpec>().unwrap(), spec, "{s}");
        }
        assert_eq!(
            DataSpec::Synthetic(SyntheticSpec::default()).to_string(),
            "synthetic:classes=10,channels=3,size=16,train=1000,test=200,seed=0"
        );
    }

    #[test]
    fn bad_strings_are_explained() {
        for (s, needle) in [
            ("", "empty"),
            ("imagenet", "unknown dataset kind"),
            ("mnist", "needs a folder"),
            ("folder: ", "needs a folder"),
            ("fashion-mnist:/x", "takes no path"),
            ("synthetic:classes", "not KEY=VALUE"),
            ("synthetic:classes=ten", "not a whole number"),
            ("synthetic:classes=-1", "not a whole number"),
            ("synthetic:colour=3", "unknown synthetic key"),
            ("synthetic:seed=1,seed=2", "twice"),
        ] {
            let err = s.parse::<DataSpec>().unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, DataError::BadSpec { .. }), "{s}: {err:?}");
            assert!(msg.contains(needle), "{s}: {msg}");
            assert!(msg.contains("cifar10:PATH") && msg.contains("synthetic:classes=N"), "{msg}");
        }
    }
}

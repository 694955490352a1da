//! ONNX Runtime against libtorch on the same inputs: logit parity on one real validation batch
//! ([`check`], judged by [`compare`]) and top-1 accuracy of both on the whole test split
//! ([`test_accuracy`]).
//!
//! The tolerance is relative to the logit scale (`max |diff| / max |logit|`), so it means the same
//! for a model whose logits are around 1 and one whose logits are around 100.
use anyhow::{bail, Result};
use indicatif::ProgressBar;
use pwsnas_datasets::{batches, Augment, Batch, Order};
use pwsnas_models::{Arch, Mode, Supernet};

use crate::data::{to_tensors, RunData};
use crate::ort_runtime::OrtModel;
use crate::report::{Accuracy, Parity};

/// Compares candidate logits with reference logits (`n × classes`, row-major).
pub fn compare(reference: &[f32], candidate: &[f32], classes: usize, tolerance: f64) -> Parity {
    assert_eq!(reference.len(), candidate.len(), "logit buffers differ in length");
    assert!(classes > 0 && reference.len().is_multiple_of(classes), "logits are not n × {classes}");
    let images = reference.len() / classes;
    let finite = reference.iter().chain(candidate).all(|v| v.is_finite());
    let max_abs_diff = reference
        .iter()
        .zip(candidate)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
        .fold(0.0, f64::max);
    let logit_scale = reference.iter().map(|v| f64::from(*v).abs()).fold(0.0, f64::max);
    let scaled_diff = if max_abs_diff == 0.0 {
        0.0
    } else if logit_scale == 0.0 {
        f64::INFINITY
    } else {
        max_abs_diff / logit_scale
    };
    let agree = reference
        .chunks_exact(classes)
        .zip(candidate.chunks_exact(classes))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    let top1_agreement = if images == 0 { 1.0 } else { agree as f64 / images as f64 };
    let reason = if !finite {
        Some("the logits contain NaN or infinity".to_string())
    } else if scaled_diff > tolerance {
        Some(format!(
            "max |ORT - libtorch| = {max_abs_diff:.3e} is {scaled_diff:.3e} of the logit scale {logit_scale:.3e}, above the tolerance {tolerance:.1e}"
        ))
    } else {
        None
    };
    Parity {
        images,
        max_abs_diff,
        logit_scale,
        scaled_diff,
        top1_agreement,
        tolerance,
        passed: reason.is_none(),
        reason,
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, v)| if *v > row[best] { i } else { best })
}

/// Logits of libtorch (eval mode) for `batch`, on the network's device, as `n × classes`.
pub fn libtorch_logits(net: &Supernet, arch: &Arch, batch: &Batch) -> Result<Vec<f32>> {
    let (x, _) = to_tensors(batch, net.device());
    let y = tch::no_grad(|| net.forward(&x, arch, Mode::EVAL));
    let flat = y.to_device(tch::Device::Cpu).to_kind(tch::Kind::Float).flatten(0, -1).contiguous();
    Ok(Vec::<f32>::try_from(&flat)?)
}

/// Logits of ONNX Runtime for `batch`.
pub fn ort_logits(model: &mut OrtModel, batch: &Batch) -> Result<Vec<f32>> {
    model.run(&batch.images, [batch.n, batch.channels, batch.height, batch.width])
}

/// Parity of `model` with libtorch on `batch`.
pub fn check(
    net: &Supernet,
    arch: &Arch,
    model: &mut OrtModel,
    batch: &Batch,
    tolerance: f64,
) -> Result<Parity> {
    let reference = libtorch_logits(net, arch, batch)?;
    let candidate = ort_logits(model, batch)?;
    if reference.len() != candidate.len() {
        bail!(
            "ONNX Runtime gave {} outputs for {} images but libtorch gave {}: the exported graph does not match the network",
            candidate.len(),
            batch.n,
            reference.len()
        );
    }
    Ok(compare(&reference, &candidate, net.kind().classes(), tolerance))
}

/// Top-1 accuracy of libtorch and of ONNX Runtime on the whole test split, and how often their
/// predictions agree. `bar` advances by one per image.
pub fn test_accuracy(
    net: &Supernet,
    arch: &Arch,
    model: &mut OrtModel,
    data: &RunData,
    batch_size: usize,
    bar: &ProgressBar,
) -> Result<Accuracy> {
    let classes = net.kind().classes();
    let (mut torch_ok, mut ort_ok, mut agree, mut n) = (0usize, 0usize, 0usize, 0usize);
    for batch in batches(&data.test, &data.norm, batch_size, Order::Sequential, &Augment::none(), false, 0) {
        let reference = libtorch_logits(net, arch, &batch)?;
        let candidate = ort_logits(model, &batch)?;
        for ((a, b), &label) in
            reference.chunks_exact(classes).zip(candidate.chunks_exact(classes)).zip(&batch.labels)
        {
            let (pa, pb) = (argmax(a), argmax(b));
            torch_ok += usize::from(pa as i64 == label);
            ort_ok += usize::from(pb as i64 == label);
            agree += usize::from(pa == pb);
        }
        n += batch.n;
        bar.inc(batch.n as u64);
    }
    let frac = |k: usize| if n == 0 { 0.0 } else { k as f64 / n as f64 };
    Ok(Accuracy {
        libtorch: frac(torch_ok),
        ort: frac(ort_ok),
        difference_pp: (frac(ort_ok) - frac(torch_ok)) * 100.0,
        test_images: n,
        prediction_agreement: frac(agree),
        retrain_test_accuracy: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_logits_pass() {
        let p = compare(&[1.0, -2.0, 0.5, 3.0], &[1.0, -2.0, 0.5, 3.0], 2, 1e-4);
        assert!(p.passed && p.reason.is_none());
        assert_eq!(
            (p.images, p.max_abs_diff, p.scaled_diff, p.top1_agreement, p.logit_scale),
            (2, 0.0, 0.0, 1.0, 3.0)
        );
    }

    #[test]
    fn tolerance_is_relative_to_the_logit_scale() {
        // A 1e-3 difference on logits of scale 100 is 1e-5 relative: within 1e-4.
        let p = compare(&[100.0, 1.0], &[100.001, 1.0], 2, 1e-4);
        assert!(p.passed, "{:?}", p.reason);
        // The same absolute difference on logits of scale 1 is 1e-3 relative: a failure with a reason.
        let p = compare(&[1.0, 0.5], &[1.001, 0.5], 2, 1e-4);
        assert!(!p.passed);
        assert!(p.reason.as_deref().unwrap().contains("above the tolerance"), "{:?}", p.reason);
    }

    #[test]
    fn disagreeing_predictions_and_nan_are_reported() {
        let p = compare(&[1.0, 2.0, 3.0, 1.0], &[2.0, 1.0, 3.0, 1.0], 2, 10.0);
        assert_eq!(p.top1_agreement, 0.5);
        let p = compare(&[1.0, 2.0], &[f32::NAN, 2.0], 2, 1e-4);
        assert!(!p.passed && p.reason.as_deref().unwrap().contains("NaN"));
        assert!(!compare(&[0.0, 0.0], &[0.0, 1e-9], 2, 1e-4).passed);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, -1.0]), 1);
        assert_eq!(argmax(&[5.0]), 0);
    }
}

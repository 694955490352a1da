//! Fixtures shared by the models crate's tests.
use pwsnas_models::{MobileParams, MobileStage, SpaceKind};

/// A 4-layer mobile space on 3×12×12 inputs: stem 8 → 8 → 8 → 16 (stride 2) → 16.
pub fn tiny_mobile() -> SpaceKind {
    SpaceKind::new(MobileParams {
        stem_channels: 8,
        stages: vec![
            MobileStage { channels: 8, repeats: 2, stride: 1 },
            MobileStage { channels: 16, repeats: 2, stride: 2 },
        ],
        head_channels: 32,
        input_size: 12,
        ..MobileParams::default()
    })
}

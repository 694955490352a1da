//! Search spaces and networks of pwsnas.
//!
//! - [`op`], [`space`]: the vocabulary — operator candidates, choice points, `Space`, `Arch` — as plain
//!   serde data; [`space::def::SpaceDef`], the trait every space implements, and
//!   [`space::registry`], the list of spaces;
//! - [`nb201`], [`mobile`], [`darts`]: the spaces — each one's parameters, choice points, arch
//!   strings (DARTS: genotypes), analytic cost, latency pieces and network;
//! - [`net`]: supernets and stand-alone networks on libtorch (tch), including the lowering of a child
//!   to the ONNX graph IR of `pwsnas-onnx`, the [`Network`] trait the spaces' networks implement and
//!   the weighted forward ([`Mix`]) of the differentiable and gated methods;
//! - [`vector`]: weight vectors and angles for the angle metric.
pub mod cost;
pub mod darts;
pub mod drawing;
pub mod error;
pub mod mobile;
pub mod nb201;
pub mod net;
pub mod op;
pub mod space;
pub mod vector;

pub use cost::{Cost, LayerCost};
pub use darts::{DartsParams, Genotype};
pub use drawing::Drawing;
pub use error::ModelError;
pub use mobile::{MobileParams, MobileStage};
pub use nb201::Nb201Params;
pub use net::pieces::{Piece, PieceKey};
pub use net::{Init, Mix, Mode, Network, Param, Route, Supernet, Weighted};
pub use op::Op;
pub use space::{Arch, ChoicePoint, ShrinkDefaults, Space, SpaceDef, SpaceKind, SpaceParams};
pub use vector::{AngleMeter, Composition, Segment};

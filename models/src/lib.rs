//! Search spaces and networks of pwsnas.
//!
//! - [`op`], [`space`]: the vocabulary — operator candidates, choice points, `Space`, `Arch` — as plain
//!   serde data;
//! - [`nb201`], [`mobile`]: each space's parameters, choice points, arch strings and analytic cost;
//! - [`net`]: supernets and stand-alone networks on libtorch (tch), including the lowering of a child
//!   to the ONNX graph IR of `pwsnas-onnx`;
//! - [`vector`]: weight vectors and angles for the angle metric.
pub mod cost;
pub mod error;
pub mod mobile;
pub mod nb201;
pub mod net;
pub mod op;
pub mod space;
pub mod vector;

pub use cost::{Cost, LayerCost};
pub use error::ModelError;
pub use mobile::{MobileParams, MobileStage};
pub use nb201::Nb201Params;
pub use net::pieces::{composition, Piece, PieceKey};
pub use net::{Mode, Param, Route, Supernet};
pub use op::Op;
pub use space::{Arch, ChoicePoint, Space, SpaceKind};
pub use vector::{AngleMeter, Composition, Segment};

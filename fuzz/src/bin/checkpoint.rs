//! A supernet checkpoint (`supernet/last.safetensors`) and `W0.safetensors`: the safetensors bytes,
//! the state in them, and loading weights and momentum buffers into a network.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pwsnas::settings::TrainSettings;
use pwsnas::supernet::SupernetState;
use pwsnas::train::{checkpoint, sgd::Sgd};
use pwsnas_fuzz::{one_thread, path};
use pwsnas_models::{Nb201Params, Space, SpaceKind, Supernet};

thread_local! {
    static NET: Supernet = {
        let kind = SpaceKind::new(Nb201Params { nodes: 3, channels: 2, cells_per_stage: 1, classes: 2, input_size: 4, input_channels: 1, ..Default::default() });
        Supernet::new(&Space::full(kind), tch::Device::Cpu)
    };
}

fuzz_target!(|data: &[u8]| {
    one_thread();
    let file = path("last.safetensors");
    let tensors = match pwsnas::fsutil::tensors_from_bytes(file, data) {
        Ok(t) => t,
        Err(_) => return,
    };
    // `restore` checks the weights as `check_w0` does (which builds a fresh network each time).
    NET.with(|net| {
        let mut sgd = Sgd::new(&TrainSettings::default());
        let _ = checkpoint::restore(&tensors, net, None, &mut sgd, tch::Device::Cpu);
    });
    if let Ok(state) = checkpoint::state_of::<SupernetState>(file, &tensors) {
        let _ = Space::from_json(state.space);
        let _ = Space::from_json(state.built_space);
    }
});

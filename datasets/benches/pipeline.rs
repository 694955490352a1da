//! Throughput of the data pipeline on the real Fashion-MNIST: reading all of it (gunzip + checks),
//! and one pass over the training split in shuffled, augmented batches of 64. Prints a note and
//! measures nothing when the dataset is not installed (`cargo xtask setup`).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pwsnas_datasets::{
    batches, fashion_mnist_dir, load, Augment, DataSpec, LoadOptions, Normalization, Order,
};

fn pipeline(c: &mut Criterion) {
    if fashion_mnist_dir().is_none() {
        eprintln!("note: Fashion-MNIST not found; run `cargo xtask setup` to benchmark the pipeline");
        return;
    }
    let spec = DataSpec::FashionMnist;
    let opts = LoadOptions::default();
    let splits = load(&spec, &opts).expect("Fashion-MNIST loads");
    let norm = Normalization::compute(&splits.train);
    let augment = Augment::standard_for(&splits.name, splits.train.height);

    let mut group = c.benchmark_group("fashion-mnist");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements((splits.train.len() + splits.test.len()) as u64));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("read all", |b| b.iter(|| load(&spec, &opts).expect("Fashion-MNIST loads")));
    group.throughput(Throughput::Elements(splits.train.len() as u64));
    group.measurement_time(Duration::from_secs(5));
    let mut seed = 0;
    group.bench_function("one pass, shuffled + augmented, batch 64", |b| {
        b.iter(|| {
            seed += 1;
            batches(&splits.train, &norm, 64, Order::Shuffled, &augment, false, seed)
                .map(|b| b.n)
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);

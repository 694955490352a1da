//! Checks the real Fashion-MNIST when it is installed (`cargo xtask setup`). Without it the test
//! prints a note and passes, unless `PWSNAS_REQUIRE_DATA=1`, which makes a missing dataset fail.

use pwsnas_datasets::{
    batches, fashion_mnist_candidates, fashion_mnist_dir, load, summary, Augment, DataSpec, LoadOptions,
    Normalization, Order, FASHION_MNIST_CLASSES,
};

#[test]
fn real_fashion_mnist() {
    if fashion_mnist_dir().is_none() {
        let tried = fashion_mnist_candidates();
        assert!(
            std::env::var("PWSNAS_REQUIRE_DATA").as_deref() != Ok("1"),
            "PWSNAS_REQUIRE_DATA=1 but Fashion-MNIST is missing (tried {tried:?}); run `cargo xtask setup`"
        );
        eprintln!("note: Fashion-MNIST not found (tried {tried:?}); skipping the real-data check");
        return;
    }
    let s = load(&DataSpec::FashionMnist, &LoadOptions::default()).unwrap();
    assert_eq!(s.name, "fashion-mnist");
    assert_eq!((s.train.len(), s.test.len()), (60000, 10000));
    assert_eq!((s.train.channels, s.train.height, s.train.width), (1, 28, 28));
    assert_eq!(s.test.labels[..10], [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    assert_eq!(s.train.classes, FASHION_MNIST_CLASSES.map(String::from));
    assert_eq!(s.train.class_counts(), vec![6000; 10]);
    assert_eq!(s.test.class_counts(), vec![1000; 10]);

    // The well-known statistics of the training set.
    let sum = summary(&s);
    let norm = &sum.train_normalization;
    assert!((norm.mean[0] - 0.2860).abs() < 1e-3 && (norm.std[0] - 0.3530).abs() < 1e-3, "{norm:?}");

    let norm = Normalization::compute(&s.train);
    let aug = Augment::standard_for(&s.name, 28);
    let n: usize = batches(&s.train, &norm, 64, Order::Shuffled, &aug, false, 0).map(|b| b.n).sum();
    assert_eq!(n, 60000);
}

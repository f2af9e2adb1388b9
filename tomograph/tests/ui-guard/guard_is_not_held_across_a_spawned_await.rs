// A future that holds a guard across `.await` cannot be spawned on a multi-thread runtime:
// it could resume on another thread. `FutureExt::traced` gives the future its own span.
async fn work() {
    let _guard = tomograph::span("work").start();
    std::future::ready(()).await;
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(work());
}

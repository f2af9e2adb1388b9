// A span guard belongs to the thread whose span stack holds its span: moving it to another
// thread is a compile error (use `start_detached()` and `DetachedSpan` to cross threads).
fn main() {
    let guard = tomograph::span("request").start();
    std::thread::spawn(move || drop(guard));
}

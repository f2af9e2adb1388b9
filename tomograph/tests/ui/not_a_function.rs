use tomograph::traced;

#[traced]
struct Handler;

fn main() {
    let _ = Handler;
}

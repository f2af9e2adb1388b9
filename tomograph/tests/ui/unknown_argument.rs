use tomograph::traced;

#[traced(name = "load", kind = "server")]
fn load() {}

fn main() {
    load();
}

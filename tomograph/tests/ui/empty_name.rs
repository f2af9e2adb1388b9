use tomograph::traced;

#[traced(name = "")]
fn load() {}

fn main() {
    load();
}

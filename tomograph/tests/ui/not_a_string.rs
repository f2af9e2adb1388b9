use tomograph::traced;

#[traced("My Server", 42)]
fn myfunc() {}

fn main() {
    myfunc();
}

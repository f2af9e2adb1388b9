use tomograph::traced;

#[traced("My Server")]
fn myfunc() {}

fn main() {
    myfunc();
}

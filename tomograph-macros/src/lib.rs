//! The `#[traced]` attribute of [tomograph](https://docs.rs/tomograph). Use it as
//! `tomograph::traced` (with tomograph's default `macros` feature); the expansion refers to
//! items of the `tomograph` crate.
//!
//! The parsing of the arguments lives in `attr`, the code generation in `expand`.

mod attr;
mod expand;

use proc_macro::TokenStream;

/// Traces a function: every call is a span, child of the span current at the call.
///
/// - `#[traced]`: the span is named after the function and belongs to the caller's service
///   (the tracer's configured one at a trace's root);
/// - `#[traced("My Server", "myfunc")]`: the seed decorator's service and span name;
/// - `#[traced(name = "...")]`, `#[traced(service = "...")]`, or both.
///
/// Works on `fn` and `async fn`, free functions and methods, generic functions, `impl Trait`
/// arguments and return types. The signature, documentation and other attributes are kept.
///
/// - sync: the span is current for the body and stops when it returns, also on early
///   `return`, `?` and panic;
/// - `async fn`: the body runs inside a [`tomograph::Traced`] future, so the span is current
///   across `.await` on whatever thread polls it, and stops when the future completes or is
///   dropped;
/// - a function returning `Result` (any type spelled `…Result<…>`) records an `Err` as an
///   error on its span (`error` tag from the error's `Display`, else its `Debug`).
///
/// ```
/// use tomograph::traced;
///
/// /// Loads an image (docs are kept).
/// #[traced("My Server", "myfunc")]
/// fn myfunc(id: u32) -> Result<String, std::num::ParseIntError> {
///     let n: u32 = "7".parse()?;
///     Ok(format!("image {}", id + n))
/// }
///
/// struct Store;
/// impl Store {
///     #[traced]
///     async fn fetch(&self, key: impl AsRef<str>) -> Option<usize> {
///         tokio::task::yield_now().await;
///         Some(key.as_ref().len())
///     }
/// }
///
/// # let memory = tomograph::testing::memory_tracer();
/// assert_eq!(myfunc(1).unwrap(), "image 8");
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// assert_eq!(rt.block_on(Store.fetch("abc")), Some(3));
/// ```
///
/// Misuse is a compile error:
///
/// ```compile_fail
/// #[tomograph::traced("only one argument")]
/// fn f() {}
/// ```
#[proc_macro_attribute]
pub fn traced(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let expanded =
        syn::parse::<attr::Args>(args).and_then(|args| expand::expand(args, item.clone()));
    match expanded {
        Ok(tokens) => tokens.into(),
        // The item stays as written, so the only error is this one.
        Err(e) => {
            let mut tokens = e.to_compile_error();
            tokens.extend(item);
            tokens.into()
        }
    }
}

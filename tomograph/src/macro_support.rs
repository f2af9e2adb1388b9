//! What the `#[traced]` expansion calls. Not public API: no stability promise.

use std::fmt::{Debug, Display};

/// An `Err` value being recorded; [`DescribeDisplay`], [`DescribeDebug`] and [`DescribeAny`]
/// pick the best description its type allows (autoref specialization: call
/// `(&&ErrorRef(e)).describe()`).
#[derive(Debug)]
pub struct ErrorRef<'a, E: ?Sized>(pub &'a E);

/// First choice: the error's `Display`.
pub trait DescribeDisplay {
    /// The description.
    fn describe(&self) -> String;
}

impl<E: Display + ?Sized> DescribeDisplay for &ErrorRef<'_, E> {
    fn describe(&self) -> String {
        self.0.to_string()
    }
}

/// Second choice: the error's `Debug`.
pub trait DescribeDebug {
    /// The description.
    fn describe(&self) -> String;
}

impl<E: Debug + ?Sized> DescribeDebug for &&ErrorRef<'_, E> {
    fn describe(&self) -> String {
        format!("{:?}", self.0)
    }
}

/// Last resort: the error's type name.
pub trait DescribeAny {
    /// The description.
    fn describe(&self) -> String;
}

impl<E: ?Sized> DescribeAny for ErrorRef<'_, E> {
    fn describe(&self) -> String {
        std::any::type_name::<E>().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Opaque;

    #[test]
    // The expansion always calls `(&&ErrorRef(e)).describe()`; the borrows pick the impl.
    #[allow(clippy::needless_borrow)]
    fn picks_the_best_description() {
        let io = std::io::Error::other("disk full");
        assert_eq!((&&ErrorRef(&io)).describe(), "disk full");
        #[derive(Debug)]
        struct OnlyDebug(#[allow(dead_code)] u8);
        assert_eq!((&&ErrorRef(&OnlyDebug(7))).describe(), "OnlyDebug(7)");
        assert!((&&ErrorRef(&Opaque)).describe().ends_with("Opaque"));
    }
}

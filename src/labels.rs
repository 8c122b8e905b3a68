//! Enums whose values are names: metric labels, log reasons. A leaf module,
//! so that the modules that declare such enums (crypto, limits, credentials)
//! and the one that counts them (metrics) never import each other.

/// A field-less enum whose values are metric labels.
pub trait Label: Copy + PartialEq + 'static {
    /// Every value, in the order they are exported.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

/// `labels!(Enum { Variant => "label", … })`: `as_str` and [`Label`] for a
/// field-less enum. `as_str` is an exhaustive match, so a variant missing
/// from the list does not compile, and `ALL` is made from the same list.
macro_rules! labels {
    ($name:ident { $($variant:ident => $label:literal),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }
        }

        impl $crate::labels::Label for $name {
            const ALL: &'static [Self] = &[$(Self::$variant),+];
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }
    };
}
pub(crate) use labels;

//! Closed label sets: one mechanism for every fixed set of label values.
//!
//! [`label_set!`] declares an enum whose variants name their label values;
//! it gives the list (`ALL`, in declaration order), the name (`as_str`),
//! the position (`index`) and the reverse (`parse`), so no list of names is
//! kept by hand. [`ByLabel`] is an array indexed by such an enum, built from
//! its `ALL`: a counter array cannot fall out of label order, and indexing
//! it with another set's value does not compile. Each set is declared in
//! the module that owns the concept (`tls::version::VersionClass`,
//! `metrics::Bound`, ...).

use std::marker::PhantomData;
use std::ops::{Index, IndexMut};

/// What [`label_set!`] implements.
pub trait Label: Copy + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    fn index(self) -> usize;
}

/// Declares a closed label set:
///
/// ```ignore
/// label_set! {
///     /// Doc.
///     #[derive(Clone, Copy, Debug, PartialEq, Eq)]
///     pub enum Outcome {
///         /// Doc of a value.
///         Negotiated = "negotiated",
///         Rejected = "rejected",
///     }
/// }
/// ```
#[macro_export]
macro_rules! label_set {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $label:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order (the order of `ByLabel` arrays).
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }

            /// Position in [`ALL`](Self::ALL).
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The value whose label is `s`.
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.into_iter().find(|v| v.as_str() == s)
            }
        }

        impl $crate::label::Label for $name {
            const ALL: &'static [$name] = &$name::ALL;
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
            fn index(self) -> usize {
                $name::index(self)
            }
        }
    };
}

/// One `T` per value of the label set `L` (`N` is `L::ALL.len()`, checked
/// when compiled), indexed by `L`.
pub struct ByLabel<L, T, const N: usize> {
    items: [T; N],
    label: PhantomData<L>,
}

impl<L: Label, T, const N: usize> ByLabel<L, T, N> {
    /// `f` of every value, in order.
    pub fn new(mut f: impl FnMut(L) -> T) -> Self {
        const { assert!(N == L::ALL.len(), "ByLabel: N is not the label set's size") };
        ByLabel {
            items: std::array::from_fn(|i| f(L::ALL[i])),
            label: PhantomData,
        }
    }

    /// Every value with its item, in order.
    pub fn iter(&self) -> impl Iterator<Item = (L, &T)> {
        L::ALL.iter().copied().zip(self.items.iter())
    }

    pub fn items(&self) -> &[T; N] {
        &self.items
    }

    pub fn items_mut(&mut self) -> &mut [T; N] {
        &mut self.items
    }
}

impl<L: Label, T: Default, const N: usize> Default for ByLabel<L, T, N> {
    fn default() -> Self {
        ByLabel::new(|_| T::default())
    }
}

impl<L: Label, T: Clone, const N: usize> Clone for ByLabel<L, T, N> {
    fn clone(&self) -> Self {
        ByLabel {
            items: self.items.clone(),
            label: PhantomData,
        }
    }
}

impl<L: Label, T: Copy, const N: usize> Copy for ByLabel<L, T, N> {}

impl<L: Label, T: std::fmt::Debug, const N: usize> std::fmt::Debug for ByLabel<L, T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(l, t)| (l.as_str(), t)))
            .finish()
    }
}

impl<L: Label, T: PartialEq, const N: usize> PartialEq for ByLabel<L, T, N> {
    fn eq(&self, o: &Self) -> bool {
        self.items == o.items
    }
}

impl<L: Label, T: Eq, const N: usize> Eq for ByLabel<L, T, N> {}

impl<L: Label, T, const N: usize> Index<L> for ByLabel<L, T, N> {
    type Output = T;
    fn index(&self, l: L) -> &T {
        // `index()` is below N: N is the set's size.
        &self.items[l.index() % N]
    }
}

impl<L: Label, T, const N: usize> IndexMut<L> for ByLabel<L, T, N> {
    fn index_mut(&mut self, l: L) -> &mut T {
        &mut self.items[l.index() % N]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    label_set! {
        /// A set for the test.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        enum Colour {
            /// The first.
            Red = "red",
            Green = "green",
            Blue = "blue",
        }
    }

    #[test]
    fn label_set_lists_names_and_indexes() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::Green, Colour::Blue]);
        assert_eq!(Colour::Green.as_str(), "green");
        assert_eq!(Colour::Blue.index(), 2);
        assert_eq!(Colour::parse("blue"), Some(Colour::Blue));
        assert_eq!(Colour::parse("purple"), None);
        let mut n: ByLabel<Colour, u64, 3> = ByLabel::default();
        n[Colour::Green] += 2;
        let names: Vec<_> = n.iter().map(|(c, v)| (c.as_str(), *v)).collect();
        assert_eq!(names, [("red", 0), ("green", 2), ("blue", 0)]);
    }
}

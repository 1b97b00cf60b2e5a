//! What a key of the configuration file accepts: the [`Kind`] of each
//! value and the [`Field`]s of each table, derived from the raw model
//! ([`Shape`]; `#[derive(Shape)]` from sy-config-derive on the structs of
//! `raw.rs`). The checker and the JSON Schema in `schema.rs` walk these
//! tables.

use toml::Spanned;

use Kind::{Array, Bool, Int, Map, Number, Str};

/// What a key accepts.
pub(crate) enum Kind {
    /// A string.
    Str,
    /// A string holding a duration ("5s"): `#[shape(duration)]` on a
    /// string field.
    Duration,
    /// A size: a string ("64KiB") or a non-negative integer (bytes).
    Size,
    /// An integer that fits in an i64.
    Int,
    /// A number: an integer (fits in an i64) or a float.
    Number,
    /// `true` or `false`.
    Bool,
    /// An array whose elements all have the given kind.
    Array(&'static Kind),
    /// A table with a fixed set of keys.
    Table(&'static [Field]),
    /// A table with user-chosen keys (names), each value of the given kind.
    Map(&'static Kind),
    /// A string, or a table with the given keys; the texts describe one
    /// such value and several of them.
    StrOrTable(&'static [Field], &'static str, &'static str),
    /// A string or an integer; the texts describe one such value and
    /// several of them.
    StrOrInt(&'static str, &'static str),
}

/// One known key of a table.
pub(crate) struct Field {
    /// The key.
    pub(crate) name: &'static str,
    /// What it accepts.
    pub(crate) kind: Kind,
}

impl Field {
    /// A key and what it accepts; `#[derive(Shape)]` writes these.
    pub(crate) const fn new(name: &'static str, kind: Kind) -> Field {
        Field { name, kind }
    }
}

/// What a type of the raw model accepts, as a [`Kind`].
///
/// Structs of `raw.rs` derive it (`#[derive(Shape)]` from sy-config-derive:
/// a [`Kind::Table`] of their fields, in order, with an inherent `FIELDS`
/// constant); the types with a hand-written `Deserialize` (string or
/// table, string or integer) implement it by hand next to that impl; the
/// impls below cover the scalars and containers the fields are made of.
pub(crate) trait Shape {
    /// What a value of this type is written as.
    const KIND: Kind;
}

impl Shape for String {
    const KIND: Kind = Str;
}

impl Shape for i64 {
    const KIND: Kind = Int;
}

impl Shape for f64 {
    const KIND: Kind = Number;
}

impl Shape for bool {
    const KIND: Kind = Bool;
}

/// A missing key is judged by validation, not by its shape.
impl<T: Shape> Shape for Option<T> {
    const KIND: Kind = T::KIND;
}

/// A position does not change what is written.
impl<T: Shape> Shape for Spanned<T> {
    const KIND: Kind = T::KIND;
}

impl<T: Shape> Shape for Box<T> {
    const KIND: Kind = T::KIND;
}

impl<T: Shape> Shape for Vec<T> {
    const KIND: Kind = Array(&T::KIND);
}

/// A table whose keys are names the user chooses.
impl<K, T: Shape> Shape for std::collections::BTreeMap<K, T> {
    const KIND: Kind = Map(&T::KIND);
}

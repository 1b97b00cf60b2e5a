//! `#[derive(Shape)]` for sy-config's raw model (`crates/sy-config/src/raw.rs`).
//!
//! A configuration key is declared once, as a field of a raw struct. The
//! derive turns the struct into the table of known keys that the config
//! checker walks before serde (`sy-config/src/schema.rs`) and that the JSON
//! Schema is printed from. For
//!
//! ```text
//! #[derive(Deserialize, Shape)]
//! #[serde(deny_unknown_fields)]
//! struct RawHedge {
//!     delay: Option<Text>,
//!     #[shape(duration)]
//!     fallback: Option<Text>,
//! }
//! ```
//!
//! it emits, in field order:
//!
//! ```text
//! impl RawHedge {
//!     pub(crate) const FIELDS: &'static [crate::shape::Field] = &[
//!         crate::shape::Field::new("delay", <Option<Text> as crate::shape::Shape>::KIND),
//!         crate::shape::Field::new("fallback", crate::shape::Kind::Duration),
//!     ];
//! }
//! impl crate::shape::Shape for RawHedge {
//!     const KIND: crate::shape::Kind = crate::shape::Kind::Table(Self::FIELDS);
//! }
//! ```
//!
//! A key's kind comes from its Rust type (`Shape` impls in `shape.rs`);
//! `#[shape(duration)]` marks a string that holds a duration, the one kind a
//! type alone does not tell. `#[serde(rename = "...")]` names the key and
//! `#[serde(skip)]` / `#[serde(skip_deserializing)]` leave it out. Any
//! other serde attribute that changes which keys serde reads (`flatten`,
//! `alias`, `rename_all`, `deserialize_with`, ...) is a compile error: the
//! derive would describe a different table than serde reads, so such a
//! type writes its `Shape` by hand.
//!
//! The generated code names `crate::shape`, so the derive is only for
//! sy-config.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, Fields, LitStr, Result};

/// Derives `crate::shape::Shape` (a table of the struct's keys) and an
/// inherent `FIELDS` constant for a struct with named fields; see the
/// crate documentation.
#[proc_macro_derive(Shape, attributes(shape))]
pub fn derive_shape(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// One key of the table, as the derive sees it.
struct Key {
    /// The key as written in the file.
    name: LitStr,
    /// The field's type.
    ty: syn::Type,
    /// `#[shape(duration)]`.
    duration: bool,
}

fn expand(input: &DeriveInput) -> Result<TokenStream2> {
    let ident = &input.ident;
    if !input.generics.params.is_empty() {
        return Err(Error::new(
            input.generics.span(),
            "#[derive(Shape)] does not take generic types",
        ));
    }
    check_container_attributes(input)?;
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => &named.named,
            _ => {
                return Err(Error::new(
                    ident.span(),
                    "#[derive(Shape)] needs a struct with named fields (a TOML table)",
                ));
            }
        },
        _ => {
            return Err(Error::new(
                ident.span(),
                "#[derive(Shape)] needs a struct with named fields; implement Shape by hand \
                 next to a hand-written Deserialize",
            ));
        }
    };
    let mut keys = Vec::new();
    for field in fields {
        if let Some(key) = key(field)? {
            keys.push(key);
        }
    }
    let entries = keys.iter().map(|key| {
        let Key { name, ty, duration } = key;
        if *duration {
            quote! { crate::shape::Field::new(#name, crate::shape::Kind::Duration) }
        } else {
            quote! { crate::shape::Field::new(#name, <#ty as crate::shape::Shape>::KIND) }
        }
    });
    // A duration is a string with a unit: the field's own type must be one
    // the checker reads as a string, else the override would hide a type
    // serde refuses. Checked when the constant is evaluated, at compile
    // time.
    let duration_checks = keys.iter().filter(|key| key.duration).map(|key| {
        let Key { name, ty, .. } = key;
        let message = format!(
            "#[shape(duration)] on `{}`: the field's type is not a string",
            name.value()
        )
        .replace('{', "{{")
        .replace('}', "}}");
        quote_spanned! {name.span()=>
            assert!(
                matches!(<#ty as crate::shape::Shape>::KIND, crate::shape::Kind::Str),
                #message
            );
        }
    });
    Ok(quote! {
        impl #ident {
            /// The keys of this table, in field order (`#[derive(Shape)]`).
            pub(crate) const FIELDS: &'static [crate::shape::Field] = {
                #(#duration_checks)*
                &[#(#entries),*]
            };
        }
        impl crate::shape::Shape for #ident {
            const KIND: crate::shape::Kind = crate::shape::Kind::Table(Self::FIELDS);
        }
    })
}

/// Refuses container attributes that change the keys serde reads.
fn check_container_attributes(input: &DeriveInput) -> Result<()> {
    for attr in &input.attrs {
        if attr.path().is_ident("shape") {
            return Err(Error::new(
                attr.span(),
                "#[shape(...)] belongs on a field, not on the struct",
            ));
        }
        if !attr.path().is_ident("serde") {
            continue;
        }
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("deny_unknown_fields") {
                Ok(())
            } else if meta.path.is_ident("default") || meta.path.is_ident("expecting") {
                if meta.input.peek(syn::Token![=]) {
                    meta.value()?.parse::<LitStr>()?;
                }
                Ok(())
            } else {
                Err(meta.error(
                    "#[derive(Shape)] does not know how this serde attribute changes the keys; \
                     implement Shape by hand",
                ))
            }
        })?;
    }
    Ok(())
}

/// The key a field declares, or None for a field serde skips.
fn key(field: &syn::Field) -> Result<Option<Key>> {
    let Some(ident) = &field.ident else {
        return Err(Error::new(field.span(), "a field without a name"));
    };
    let mut name = None;
    let mut skip = false;
    let mut duration = false;
    for attr in &field.attrs {
        if attr.path().is_ident("serde") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("rename") {
                    if !meta.input.peek(syn::Token![=]) {
                        return Err(
                            meta.error("#[derive(Shape)] takes rename = \"...\", not rename(...)")
                        );
                    }
                    name = Some(meta.value()?.parse::<LitStr>()?);
                    Ok(())
                } else if meta.path.is_ident("skip") || meta.path.is_ident("skip_deserializing") {
                    skip = true;
                    Ok(())
                } else if meta.path.is_ident("default") {
                    if meta.input.peek(syn::Token![=]) {
                        meta.value()?.parse::<LitStr>()?;
                    }
                    Ok(())
                } else {
                    Err(meta.error(
                        "#[derive(Shape)] does not know how this serde attribute changes the \
                         key; implement Shape by hand",
                    ))
                }
            })?;
        } else if attr.path().is_ident("shape") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("duration") {
                    duration = true;
                    Ok(())
                } else {
                    Err(meta.error("unknown #[shape(...)] attribute; known: duration"))
                }
            })?;
        }
    }
    if skip {
        return Ok(None);
    }
    let name = name.unwrap_or_else(|| {
        // A raw identifier (`r#type`) is the key `type`.
        let text = ident.to_string();
        let text = text.strip_prefix("r#").unwrap_or(&text).to_owned();
        LitStr::new(&text, ident.span())
    });
    Ok(Some(Key {
        name,
        ty: field.ty.clone(),
        duration,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn expand_str(source: &str) -> std::result::Result<String, String> {
        let input: DeriveInput = syn::parse_str(source).unwrap();
        expand(&input)
            .map(|tokens| tokens.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn fields_become_keys_in_order_with_their_types_kinds() {
        let out = expand_str(
            "struct R { b: Option<Text>, a: Option<Vec<Int>>, #[serde(rename = \"match\")] \
             matcher: Option<RawMatch>, #[serde(skip)] hidden: u8, r#type: Option<Text> }",
        )
        .unwrap();
        let b = out.find("\"b\"").unwrap();
        let a = out.find("\"a\"").unwrap();
        let m = out.find("\"match\"").unwrap();
        let t = out.find("\"type\"").unwrap();
        assert!(b < a && a < m && m < t, "{out}");
        assert!(out.contains("< Option < Vec < Int > > as crate :: shape :: Shape > :: KIND"));
        assert!(!out.contains("matcher") && !out.contains("hidden"), "{out}");
        assert!(out.contains("Kind :: Table (Self :: FIELDS)"), "{out}");
    }

    #[test]
    fn a_duration_is_a_string_checked_at_compile_time() {
        let out = expand_str("struct R { #[shape(duration)] timeout: Option<Text> }").unwrap();
        assert!(
            out.contains("Field :: new (\"timeout\" , crate :: shape :: Kind :: Duration)"),
            "{out}"
        );
        assert!(out.contains("assert !"), "{out}");
    }

    #[test]
    fn attributes_that_change_the_keys_are_refused() {
        for source in [
            "struct R { #[serde(flatten)] more: Option<Text> }",
            "struct R { #[serde(alias = \"x\")] y: Option<Text> }",
            "struct R { #[serde(rename(deserialize = \"x\"))] y: Option<Text> }",
            "struct R { #[serde(deserialize_with = \"f\")] y: Option<Text> }",
            "#[serde(rename_all = \"camelCase\")] struct R { y: Option<Text> }",
            "struct R { #[shape(size)] y: Option<Text> }",
            "struct R(Option<Text>);",
            "enum R { A }",
            "struct R<T> { y: T }",
        ] {
            assert!(expand_str(source).is_err(), "{source}");
        }
    }

    #[test]
    fn harmless_serde_attributes_are_accepted() {
        let out = expand_str(
            "#[serde(deny_unknown_fields, default)] struct R { #[serde(default)] a: Vec<Text>, \
             #[serde(default = \"f\")] b: Option<Text> }",
        )
        .unwrap();
        assert!(out.contains("\"a\"") && out.contains("\"b\""), "{out}");
    }
}

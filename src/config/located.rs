//! [`Located`]: a table with where it is written, for tables `toml::Spanned` cannot hold.
//!
//! TOML makes a table without a header of its own in two ways: a sub-table's header alone
//! (`[site.html.snippets]` with no `[site.html]` makes `site.html` a table) and dotted keys
//! (`html.enabled = false` under `[[site]]`). toml gives such a table no span, and
//! `Spanned<T>` then reads the table's own keys where it wants its span fields, failing with
//! "invalid type: string \"snippets\", but a borrowed string is wanted here" on a valid file.
//! `Located<T>` asks for the span the same way `Spanned` does, and when there is none reads
//! the table itself, taking the span of its first key (the line the table is first named on).

use serde::de::{self, value::MapAccessDeserializer, value::SeqAccessDeserializer};
use serde::de::{DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_spanned::__unstable::{END_FIELD, NAME, START_FIELD, VALUE_FIELD};
use std::marker::PhantomData;
use std::ops::Range;
use toml::Spanned;

/// The fields toml's deserializer answers a span request on (see `serde_spanned::is_spanned`).
const FIELDS: &[&str] = &[START_FIELD, END_FIELD, VALUE_FIELD];

#[derive(Debug)]
pub struct Located<T> {
    span: Range<usize>,
    value: T,
}

impl<T> Located<T> {
    /// The table's header or, for a table without one, its first key; `0..0` (the file as a
    /// whole) for an array of tables, which toml gives no span either.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub fn get_ref(&self) -> &T {
        &self.value
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(NAME, FIELDS, LocatedVisitor(PhantomData))
    }
}

struct LocatedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
    type Value = Located<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Located<T>, A::Error> {
        match map.next_key_seed(FirstKey)? {
            Some(Key::SpanStart) => {
                // toml's answer to the span request: start, end, value, in that order.
                let start: usize = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let end: usize = map.next_value()?;
                let _: Option<String> = map.next_key()?;
                let value = map.next_value()?;
                Ok(Located {
                    span: start..end,
                    value,
                })
            }
            Some(Key::Name(first)) => {
                let span = first.span();
                let rest = PutBack {
                    first: Some(first.into_inner()),
                    map,
                };
                let value = T::deserialize(MapAccessDeserializer::new(rest))?;
                Ok(Located { span, value })
            }
            None => {
                let value = T::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Located { span: 0..0, value })
            }
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Located<T>, A::Error> {
        let value = T::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(Located { span: 0..0, value })
    }
}

/// A map's first key: the marker of toml's span answer, or one of the table's own keys (with
/// its span, which toml gives every key).
enum Key {
    SpanStart,
    Name(Spanned<String>),
}

struct FirstKey;

impl<'de> DeserializeSeed<'de> for FirstKey {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_struct(NAME, FIELDS, FirstKey)
    }
}

impl<'de> Visitor<'de> for FirstKey {
    type Value = Key;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a key")
    }

    /// The marker, or a key toml has no span for.
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(if s == START_FIELD {
            Key::SpanStart
        } else {
            Key::Name(Spanned::new(0..0, s.to_string()))
        })
    }

    /// A key with its span.
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Key, A::Error> {
        Spanned::deserialize(MapAccessDeserializer::new(map)).map(Key::Name)
    }
}

/// The table's keys with the first one, already read, put back in front.
struct PutBack<A> {
    first: Option<String>,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for PutBack<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

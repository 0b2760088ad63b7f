//! Strict decoding that knows where it is. serde_yaml_ng reports unknown fields and wrong types without saying
//! where in the document they are, so the file is first read into a value tree and then decoded by a small
//! deserializer over that tree which carries the field path (`profiles[0].plugins.score.enabled[2]`) and puts it
//! on every error, the way upstream's strict decoder (sigs.k8s.io/json) names the field.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};
use serde_json::{Map, Number, Value};

/// A decoding failure: the field path (empty for the document itself) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Where, in upstream's field-path syntax; `None` until the error has travelled back to a known position.
    pub path: Option<String>,
    /// What went wrong, one line.
    pub message: String,
}

impl DecodeError {
    /// An error at a known path.
    pub fn at(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: Some(path.to_owned()),
            message: message.into(),
        }
    }

    /// Fills in the path if nobody deeper did: the innermost position that saw the error wins.
    fn located(mut self, path: &str) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
        }
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_deref() {
            Some(path) if !path.is_empty() => write!(f, "{path}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            path: None,
            message: msg.to_string(),
        }
    }

    fn unknown_field(field: &str, _expected: &'static [&'static str]) -> Self {
        Self::custom(format!("unknown field {field:?}"))
    }

    // Our enum-like strings are decoded as Rust enums; say it as upstream's validation does for a bad value.
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let supported: Vec<String> = expected.iter().map(|v| format!("{v:?}")).collect();
        Self::custom(format!(
            "Unsupported value: {variant:?}: supported values: {}",
            supported.join(", ")
        ))
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format!("missing field {field:?}"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::custom(format!("duplicate field {field:?}"))
    }
}

/// Joins a field name onto a path.
pub fn child(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Joins a list index onto a path.
pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Converts YAML (or JSON, which YAML reads) into a JSON tree, as upstream's sigs.k8s.io/yaml does before decoding.
pub fn yaml_to_json(value: serde_yaml_ng::Value, path: &str) -> Result<Value, DecodeError> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f)
                        .ok_or_else(|| DecodeError::at(path, format!("invalid number {n}")))?,
                )
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| yaml_to_json(item, &index(path, i)))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, item) in mapping {
                // Go's YAML-to-JSON conversion turns scalar keys into their text.
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    _ => return Err(DecodeError::at(path, "a mapping key must be a string")),
                };
                let item = yaml_to_json(item, &child(path, &key))?;
                map.insert(key, item);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => {
            return Err(DecodeError::at(
                path,
                format!("YAML tag {} is not supported", tagged.tag),
            ));
        }
    })
}

/// Decodes `value` into `T`, refusing unknown fields anywhere, with errors placed under `path`.
pub fn from_value<T: DeserializeOwned>(value: &Value, path: &str) -> Result<T, DecodeError> {
    T::deserialize(ValueDeserializer {
        value,
        path: path.to_owned(),
    })
    .map_err(|e| e.located(path))
}

/// A serde deserializer over a JSON tree that knows its own field path.
struct ValueDeserializer<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> ValueDeserializer<'a> {
    fn visit_object<'de, V: Visitor<'de>>(
        self,
        visitor: V,
        fields: Option<&[&str]>,
    ) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Object(map) => {
                // Checking the keys here makes every struct strict, including k8s-openapi's, which ignore unknown
                // fields themselves; upstream's strict decoding refuses them inside core/v1 types too.
                if let Some(fields) = fields
                    && let Some(unknown) = map.keys().find(|k| !fields.contains(&k.as_str()))
                {
                    return Err(DecodeError::at(
                        &self.path,
                        format!("unknown field {unknown:?}"),
                    ));
                }
                visitor.visit_map(MapAccess {
                    iter: map.iter(),
                    pending: None,
                    path: self.path,
                })
            }
            // Go's decoder leaves a field at its zero value on null; an empty object is the same here.
            Value::Null => visitor.visit_map(MapAccess {
                iter: EMPTY.iter(),
                pending: None,
                path: self.path,
            }),
            other => Err(invalid_type(other, &visitor)),
        }
    }
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

fn invalid_type<'de, V: Visitor<'de>>(value: &Value, visitor: &V) -> DecodeError {
    let unexpected = match value {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => de::Unexpected::Unsigned(u),
            (_, Some(i), _) => de::Unexpected::Signed(i),
            (_, _, f) => de::Unexpected::Float(f.unwrap_or(f64::NAN)),
        },
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    };
    de::Error::invalid_type(unexpected, visitor)
}

/// Null stands for the zero value of scalars, as in Go; anything else goes through `deserialize_any`.
macro_rules! scalar {
    ($method:ident, $visit:ident, $zero:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
            match self.value {
                Value::Null => visitor.$visit($zero),
                _ => self.deserialize_any(visitor),
            }
        }
    };
}

impl<'de> de::Deserializer<'de> for ValueDeserializer<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_str(s),
            Value::Array(items) => visitor.visit_seq(SeqAccess {
                iter: items.iter().enumerate(),
                path: self.path,
            }),
            Value::Object(_) => self.visit_object(visitor, None),
        }
    }

    scalar!(deserialize_bool, visit_bool, false);
    scalar!(deserialize_i8, visit_i64, 0);
    scalar!(deserialize_i16, visit_i64, 0);
    scalar!(deserialize_i32, visit_i64, 0);
    scalar!(deserialize_i64, visit_i64, 0);
    scalar!(deserialize_u8, visit_u64, 0);
    scalar!(deserialize_u16, visit_u64, 0);
    scalar!(deserialize_u32, visit_u64, 0);
    scalar!(deserialize_u64, visit_u64, 0);
    scalar!(deserialize_f32, visit_f64, 0.0);
    scalar!(deserialize_f64, visit_f64, 0.0);
    scalar!(deserialize_str, visit_str, "");
    scalar!(deserialize_string, visit_str, "");

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::Null => visitor.visit_seq(SeqAccess {
                iter: [].iter().enumerate(),
                path: self.path,
            }),
            Value::Array(_) => self.deserialize_any(visitor),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        self.visit_object(visitor, None)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        self.visit_object(visitor, Some(fields))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        match self.value {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit unit_struct tuple tuple_struct identifier
    }
}

struct SeqAccess<'a, I: Iterator<Item = (usize, &'a Value)>> {
    iter: I,
    path: String,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Value)>> de::SeqAccess<'de> for SeqAccess<'a, I> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        let Some((i, value)) = self.iter.next() else {
            return Ok(None);
        };
        let path = index(&self.path, i);
        seed.deserialize(ValueDeserializer {
            value,
            path: path.clone(),
        })
        .map(Some)
        .map_err(|e| e.located(&path))
    }
}

struct MapAccess<'a> {
    iter: serde_json::map::Iter<'a>,
    pending: Option<(&'a String, &'a Value)>,
    path: String,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        // A null member is the same as an absent one for Go's decoder, so it is skipped and defaults apply.
        let Some((key, value)) = self.iter.by_ref().find(|(_, value)| !value.is_null()) else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        let key: de::value::StrDeserializer<'_, DecodeError> = key.as_str().into_deserializer();
        seed.deserialize(key).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("value requested before its key"));
        };
        let path = child(&self.path, key);
        seed.deserialize(ValueDeserializer {
            value,
            path: path.clone(),
        })
        .map_err(|e| e.located(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields, default)]
    struct Inner {
        name: String,
        weight: Option<i32>,
    }

    #[derive(Deserialize, Debug, Default, PartialEq)]
    #[serde(rename_all = "camelCase", deny_unknown_fields, default)]
    struct Outer {
        items: Vec<Inner>,
        count: i64,
        flag: bool,
    }

    fn decode(yaml: &str) -> Result<Outer, String> {
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
        let json = yaml_to_json(value, "").map_err(|e| e.to_string())?;
        from_value(&json, "").map_err(|e| e.to_string())
    }

    #[test]
    fn errors_name_the_field_path() {
        let cases = [
            (
                "items: [{name: a}, {name: b, weigth: 1}]",
                r#"items[1]: unknown field "weigth""#,
            ),
            (
                "items: [{name: a, weight: x}]",
                r#"items[0].weight: invalid type: string "x", expected i32"#,
            ),
            ("count: [1]", "count: invalid type: sequence, expected i64"),
            ("bogus: 1", r#"unknown field "bogus""#),
            (
                "items: [{name: a, weight: 3000000000}]",
                "items[0].weight: invalid value: integer `3000000000`, expected i32",
            ),
        ];
        for (yaml, want) in cases {
            let got = decode(yaml).expect_err(yaml);
            assert!(got.starts_with(want), "{yaml}: got {got}, want {want}");
        }
    }

    #[test]
    fn null_is_the_zero_value_as_in_go() {
        let got = decode("items:\ncount:\nflag:").expect("decodes");
        assert_eq!(got, Outer::default());
        let got = decode("items: [{name: a, weight: 2}]\ncount: 5").expect("decodes");
        assert_eq!(
            got.items,
            vec![Inner {
                name: "a".into(),
                weight: Some(2)
            }]
        );
        assert_eq!(got.count, 5);
    }

    #[test]
    fn json_documents_decode_too() {
        let got = decode(r#"{"items": [{"name": "a"}], "flag": true}"#).expect("decodes");
        assert!(got.flag);
    }

    #[test]
    fn duplicate_keys_and_tags_are_refused() {
        assert!(decode("count: 1\ncount: 2").is_err());
        let got = decode("count: !foo 1").expect_err("tagged");
        assert!(got.contains("count: YAML tag"), "{got}");
    }
}

//! One column's field in the plan: its type by the default rule or the mapping's override, its
//! name, key, nullability, `default:`, `on_null`, partition key and index, each checked where
//! the mapping names it.

use super::*;

impl TablePlanner<'_> {
    pub(super) fn plan_field(
        &self,
        column: &SourceColumn,
        fspec: Option<&FieldSpec>,
        is_key: bool,
        fixes: &mut Vec<Finding>,
    ) -> Result<FieldPlan, MappingError> {
        let kind = &column.pg_type.kind;
        let empty = FieldSpec::default();
        let fs = fspec.unwrap_or(&empty);
        let name = match &fs.name {
            Some(n) if is_valid_name(n) => n.clone(),
            Some(n) => {
                return Err(MappingError::InvalidValue {
                    at: self.field_loc(&column.name, "name"),
                    key: "name".into(),
                    value: n.clone(),
                    reason:
                        "field names hold letters, digits and `_`, and start with a letter or `_`"
                            .into(),
                    suggestion: Some(sanitize_name(n)),
                });
            }
            None => sanitize_name(&column.name),
        };
        let mut notes = Vec::new();
        let choice = match &fs.data_type {
            Some(t) => {
                let Some(target) = DataType::parse(t) else {
                    return Err(MappingError::InvalidValue {
                        at: self.field_loc(&column.name, "type"),
                        key: "type".into(),
                        value: t.clone(),
                        reason: "not a field type".into(),
                        suggestion: closest(t, DataType::ALL.iter().map(|d| d.name())),
                    });
                };
                let same_as_default = default_rule(kind).ok().filter(|d| d.data_type == target);
                match check_override(kind, target) {
                    Ok(_) if same_as_default.is_some() => same_as_default.map(|mut d| {
                        if d.data_type.is_dense_vector() {
                            d.dim = fs.dim.or(d.dim);
                        }
                        d
                    }),
                    Ok(note) => {
                        notes.extend(note);
                        Some(self.override_choice(column, target, fs)?)
                    }
                    Err(reason) => {
                        return Err(MappingError::IncompatibleOverride {
                            at: self.field_loc(&column.name, "type"),
                            table: self.spec.source.clone(),
                            column: column.name.clone(),
                            pg_type: column.pg_type.display.clone(),
                            target: target.name().into(),
                            reason,
                        });
                    }
                }
            }
            None => match default_rule(kind) {
                Ok(mut c) => {
                    if c.data_type.is_dense_vector() && c.dim.is_none() {
                        c.dim = fs.dim;
                    }
                    Some(c)
                }
                Err(_)
                    if fs.dim.is_some()
                        && matches!(
                            kind,
                            PgKind::Vector { dim: None } | PgKind::HalfVec { dim: None }
                        ) =>
                {
                    let target = if matches!(kind, PgKind::HalfVec { .. }) {
                        DataType::Float16Vector
                    } else {
                        DataType::FloatVector
                    };
                    Some(TypeChoice {
                        dim: fs.dim,
                        ..TypeChoice::of(target)
                    })
                }
                Err(fix) => {
                    fixes.push(Finding {
                        column: Some(column.name.clone()),
                        message: fix.reason,
                        fix: Some(fix.fix),
                    });
                    None
                }
            },
        };
        let mut field = FieldPlan {
            name,
            source: Some(column.name.clone()),
            pg_type: Some(column.pg_type.clone()),
            nullable: column.nullable && !is_key,
            ..FieldPlan::default()
        };
        if let Some(mut c) = choice {
            if is_key {
                if let Some(t) = primary_key_type(kind)
                    && fs.data_type.is_none()
                {
                    c.data_type = t;
                    if t == DataType::Int64 {
                        c.max_length = None;
                    }
                }
                if !matches!(c.data_type, DataType::Int64 | DataType::Varchar) {
                    return Err(MappingError::Conflict {
                        at: self.field_loc(&column.name, "source"),
                        message: format!(
                            "primary key `{}` must be INT64 or VARCHAR, not {}",
                            column.name, c.data_type
                        ),
                    });
                }
            }
            if let Some(n) = c.note.take() {
                notes.push(n);
            }
            if let Some(len) = fs.max_length {
                c.max_length =
                    Some(self.in_range(column, "max_length", len, MAX_VARCHAR_LENGTH)?);
            }
            if let Some(cap) = fs.max_capacity {
                c.max_capacity =
                    Some(self.in_range(column, "max_capacity", cap, MAX_ARRAY_CAPACITY)?);
            }
            field.data_type = Some(c.data_type);
            field.dim = c.dim;
            field.max_length = c.max_length;
            field.element_type = c.element_type;
            field.max_capacity = c.max_capacity;
        }
        field.primary_key = is_key;
        if let Some(n) = fs.nullable {
            if n && is_key {
                return Err(MappingError::Conflict {
                    at: self.field_loc(&column.name, "nullable"),
                    message: "the primary key cannot be nullable".into(),
                });
            }
            field.nullable = n;
        }
        if let Some(d) = &fs.default {
            self.check_default(column, field.data_type, d)?;
            field.default = Some(d.clone());
        }
        if let Some(on_null) = fs.on_null {
            if on_null == OnNull::Skip && field.default.is_some() {
                return Err(MappingError::Conflict {
                    at: self.field_loc(&column.name, "on_null"),
                    message: "`on_null: skip` and a `default` exclude each other: a NULL is either left out or replaced".into(),
                });
            }
            field.on_null = on_null;
        }
        if !field.nullable
            && column.nullable
            && field.default.is_none()
            && field.on_null.is_reject()
            && !is_key
        {
            notes.push(Note::warning(
                "not nullable here but NULL in the source: NULL rows are rejected",
            ));
        }
        if fs.partition_key == Some(true) {
            if !matches!(field.data_type, Some(DataType::Int64 | DataType::Varchar)) || is_key {
                return Err(MappingError::Conflict {
                    at: self.field_loc(&column.name, "partition_key"),
                    message:
                        "the partition key is an INT64 or VARCHAR field other than the primary key"
                            .into(),
                });
            }
            field.partition_key = true;
        }
        if fs.dynamic == Some(true) {
            if is_key || field.data_type.is_some_and(DataType::is_vector) {
                return Err(MappingError::Conflict {
                    at: self.field_loc(&column.name, "dynamic"),
                    message: "the primary key and vector fields cannot be dynamic".into(),
                });
            }
            field.dynamic = true;
        }
        field.index = match (&fs.index, field.data_type) {
            (Some(ix), ty) => Some(self.index_from_spec(column, ix, ty, field.element_type)?),
            (None, Some(ty)) if ty.is_vector() => Some(self.default_index(column, ty, &mut notes)),
            (None, _) => None,
        };
        field.notes = notes;
        Ok(field)
    }

    /// `value` when it is between 1 and `max`, else an error located at the field's `key`.
    pub(super) fn in_range(
        &self,
        column: &SourceColumn,
        key: &str,
        value: u32,
        max: u32,
    ) -> Result<u32, MappingError> {
        if (1..=max).contains(&value) {
            Ok(value)
        } else {
            Err(MappingError::InvalidValue {
                at: self.field_loc(&column.name, key),
                key: key.into(),
                value: value.to_string(),
                reason: format!("must be between 1 and {max}"),
                suggestion: None,
            })
        }
    }

    pub(super) fn override_choice(
        &self,
        column: &SourceColumn,
        target: DataType,
        fs: &FieldSpec,
    ) -> Result<TypeChoice, MappingError> {
        let default = default_rule(&column.pg_type.kind).ok();
        let mut c = TypeChoice::of(target);
        match target {
            DataType::Varchar => {
                c.max_length = default
                    .as_ref()
                    .filter(|d| d.data_type == DataType::Varchar)
                    .and_then(|d| d.max_length)
                    .or(Some(MAX_VARCHAR_LENGTH));
            }
            DataType::Array => {
                let element = match &fs.element_type {
                    Some(e) => Some(DataType::parse(e).filter(|t| t.is_array_element()).ok_or_else(|| {
                        MappingError::InvalidValue {
                            at: self.field_loc(&column.name, "element_type"),
                            key: "element_type".into(),
                            value: e.clone(),
                            reason: "ARRAY elements are BOOL, INT8/16/32/64, FLOAT, DOUBLE or VARCHAR".into(),
                            suggestion: closest(e, DataType::ALL.iter().filter(|t| t.is_array_element()).map(|t| t.name())),
                        }
                    })?),
                    None => default.as_ref().and_then(|d| d.element_type),
                };
                c.element_type = element;
                c.max_capacity = Some(MAX_ARRAY_CAPACITY);
                c.max_length = default.as_ref().and_then(|d| d.max_length);
            }
            t if t.is_dense_vector() => {
                c.dim = fs.dim.or_else(|| default.as_ref().and_then(|d| d.dim));
                if c.dim.is_none() {
                    return Err(MappingError::Conflict {
                        at: self.field_loc(&column.name, "type"),
                        message: format!("{t} needs a `dim:` for column `{}`", column.name),
                    });
                }
                if t == DataType::BinaryVector && c.dim.is_some_and(|d| d % 8 != 0) {
                    return Err(MappingError::Conflict {
                        at: self.field_loc(&column.name, "dim"),
                        message: "BINARY_VECTOR's dim is a multiple of 8".into(),
                    });
                }
            }
            _ => {}
        }
        Ok(c)
    }

    pub(super) fn check_default(
        &self,
        column: &SourceColumn,
        ty: Option<DataType>,
        value: &serde_json::Value,
    ) -> Result<(), MappingError> {
        use serde_json::Value as V;
        let dim = self
            .spec
            .fields
            .iter()
            .find(|f| f.source == column.name)
            .and_then(|f| f.dim)
            .or_else(|| column.pg_type.kind.dim());
        let ok = match (ty, value) {
            (_, V::Null) => true,
            (Some(DataType::FloatVector | DataType::Float16Vector), V::Array(xs)) => {
                xs.iter().all(|x| x.as_f64().is_some_and(f64::is_finite))
                    && dim.is_none_or(|d| d as usize == xs.len())
            }
            (Some(DataType::Varchar), V::String(_)) => true,
            (Some(DataType::Bool), V::Bool(_)) => true,
            (Some(t), V::Number(n)) if t.is_integer() => n.is_i64(),
            (Some(DataType::Float | DataType::Double), V::Number(_)) => true,
            (Some(DataType::Json), _) => true,
            (Some(DataType::Array), V::Array(_)) => true,
            (None, _) => true,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(MappingError::InvalidValue {
                at: self.field_loc(&column.name, "default"),
                key: "default".into(),
                value: value.to_string(),
                reason: match (ty, dim) {
                    (Some(t), Some(d)) if t.is_vector() => {
                        format!("a {} default is a list of {d} finite numbers", t.name())
                    }
                    _ => format!(
                        "does not fit the field's type {}",
                        ty.map_or("?", DataType::name)
                    ),
                },
                suggestion: None,
            })
        }
    }
}

//! A field's index in the plan: the mapping's `index:` checked against the field (type, metric,
//! parameters), or, when it names none, the source's own pgvector index copied (HNSW with its
//! `m` / `ef_construction`, IVFFlat with its `lists` and the connection's `ivfflat.probes`), or
//! the default for the type.

use std::collections::BTreeMap;

use super::*;

impl TablePlanner<'_> {
    pub(super) fn index_from_spec(
        &self,
        column: &SourceColumn,
        ix: &IndexSpec,
        ty: Option<DataType>,
        element: Option<DataType>,
    ) -> Result<IndexPlan, MappingError> {
        let Some(index_type) = IndexType::parse(&ix.index_type) else {
            return Err(MappingError::InvalidValue {
                at: self.field_loc(&column.name, "type"),
                key: "index type".into(),
                value: ix.index_type.clone(),
                reason: "not an index type".into(),
                suggestion: closest(&ix.index_type, IndexType::ALL.iter().map(|t| t.name())),
            });
        };
        let Some(ty) = ty else {
            // The field's type is an open required fix; the index is checked once it is fixed.
            return Ok(IndexPlan {
                index_type,
                metric: None,
                hnsw: None,
                ivf: None,
                origin: IndexOrigin::Mapping,
            });
        };
        if !index_type.applies_to(ty, element) {
            return Err(MappingError::Conflict {
                at: self.field_loc(&column.name, "index"),
                message: format!(
                    "a {index_type} index does not apply to a {ty} field (`{}`)",
                    column.name
                ),
            });
        }
        let metric = match &ix.metric {
            Some(m) => {
                let parsed = Metric::parse(m).filter(|m| m.supported_by(ty));
                Some(parsed.ok_or_else(|| {
                    MappingError::InvalidValue {
                        at: self.field_loc(&column.name, "metric"),
                        key: "metric".into(),
                        value: m.clone(),
                        reason: format!(
                            "{ty} fields take {}",
                            Metric::ALL
                                .iter()
                                .filter(|x| x.supported_by(ty))
                                .map(|x| x.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        suggestion: closest(
                            m,
                            Metric::ALL
                                .iter()
                                .filter(|x| x.supported_by(ty))
                                .map(|x| x.name()),
                        ),
                    }
                })?)
            }
            None if index_type.is_vector() => IndexType::default_metric(ty),
            None => None,
        };
        let mut hnsw =
            matches!(index_type, IndexType::Hnsw | IndexType::HnswSq).then(HnswParams::default);
        let mut ivf = (index_type == IndexType::IvfFlat).then(IvfParams::default);
        for (key, value) in &ix.params {
            let allowed: &[&str] = match index_type {
                IndexType::Hnsw | IndexType::HnswSq => &["M", "ef_construction", "efConstruction"],
                IndexType::IvfFlat => &["nlist", "nprobe", "lists", "probes"],
                IndexType::SparseInvertedIndex => &["drop_ratio_build"],
                _ => &[],
            };
            if !allowed.contains(&key.as_str()) {
                return Err(MappingError::UnknownKey {
                    at: self.field_loc(&column.name, key),
                    key: key.clone(),
                    expected: allowed.iter().map(|k| format!("`{k}`")).collect(),
                    suggestion: closest(key, allowed.iter().copied()),
                });
            }
            if let Some(v) = ivf.as_mut() {
                let n = value
                    .as_u64()
                    .filter(|n| (1..=65_536).contains(n))
                    .ok_or_else(|| MappingError::InvalidValue {
                        at: self.field_loc(&column.name, key),
                        key: key.clone(),
                        value: value.to_string(),
                        reason: "must be a whole number from 1 to 65536".into(),
                        suggestion: None,
                    })?;
                let n = u32::try_from(n).unwrap_or(65_536);
                if matches!(key.as_str(), "nlist" | "lists") {
                    v.nlist = n;
                } else {
                    v.nprobe = n;
                }
            }
            if let Some(h) = hnsw.as_mut() {
                let (lo, hi) = if key == "M" { (4, 64) } else { (8, 512) };
                let n = value
                    .as_u64()
                    .filter(|n| (lo..=hi).contains(n))
                    .ok_or_else(|| MappingError::InvalidValue {
                        at: self.field_loc(&column.name, key),
                        key: key.clone(),
                        value: value.to_string(),
                        reason: format!("must be a whole number from {lo} to {hi}"),
                        suggestion: None,
                    })?;
                let n = u32::try_from(n).unwrap_or(hi as u32);
                if key == "M" {
                    h.m = n;
                } else {
                    h.ef_construction = n;
                }
            }
        }
        if let Some(v) = ivf
            && v.nprobe > v.nlist
        {
            return Err(MappingError::InvalidValue {
                at: self.field_loc(&column.name, "nprobe"),
                key: "nprobe".into(),
                value: v.nprobe.to_string(),
                reason: format!("must not exceed nlist ({})", v.nlist),
                suggestion: None,
            });
        }
        Ok(IndexPlan {
            index_type,
            metric,
            hnsw,
            ivf,
            origin: IndexOrigin::Mapping,
        })
    }

    pub(super) fn default_index(
        &self,
        column: &SourceColumn,
        ty: DataType,
        notes: &mut Vec<Note>,
    ) -> IndexPlan {
        let source = self
            .table
            .vector_indexes
            .iter()
            .find(|i| i.column == column.name);
        let (index_type, hnsw) = match ty {
            DataType::FloatVector | DataType::Float16Vector => {
                (IndexType::Hnsw, Some(HnswParams::default()))
            }
            DataType::BinaryVector => (IndexType::BinFlat, None),
            _ => (IndexType::SparseInvertedIndex, None),
        };
        if let Some(src) = source {
            if let Some(metric) = src.metric.filter(|m| m.supported_by(ty)) {
                let origin = IndexOrigin::Source {
                    index: src.name.clone(),
                };
                if src.method == VectorIndexMethod::Ivfflat {
                    // The source's kind, lists and probes: the same recall/speed trade-off.
                    let d = IvfParams::default();
                    let nlist = opt_u32(&src.options, "lists")
                        .unwrap_or(d.nlist)
                        .clamp(1, 65_536);
                    let nprobe = opt_u32(&src.options, "probes")
                        .unwrap_or(d.nprobe)
                        .clamp(1, nlist);
                    return IndexPlan {
                        index_type: IndexType::IvfFlat,
                        metric: Some(metric),
                        hnsw: None,
                        ivf: Some(IvfParams { nlist, nprobe }),
                        origin,
                    };
                }
                let hnsw = hnsw.map(|_| HnswParams {
                    m: opt_u32(&src.options, "m").unwrap_or(16).clamp(4, 64),
                    ef_construction: opt_u32(&src.options, "ef_construction")
                        .unwrap_or(64)
                        .clamp(8, 512),
                });
                return IndexPlan {
                    index_type,
                    metric: Some(metric),
                    hnsw,
                    ivf: None,
                    origin,
                };
            }
            notes.push(Note::warning(
                format!("source index {} uses {}, which the engine does not index; using the default metric", src.name, src.opclass),
            ));
        }
        IndexPlan {
            index_type,
            metric: IndexType::default_metric(ty),
            hnsw,
            ivf: None,
            origin: IndexOrigin::Default,
        }
    }
}

fn opt_u32(options: &BTreeMap<String, String>, key: &str) -> Option<u32> {
    options.get(key).and_then(|v| v.parse().ok())
}

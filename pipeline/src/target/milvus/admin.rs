//! `etl collections` on a Milvus server: its collections and version, a collection's schema as
//! the server describes it; load, release and drop.

use etl_connectors::milvus::MilvusClient;
use serde_json::{Value, json};

use crate::error::PipelineError;
use crate::target::{Admin, Answer};

/// Answers `command` on the server at `url`.
pub(super) async fn administer(
    client: &MilvusClient,
    url: &str,
    version: &str,
    command: &Admin,
) -> Result<Answer, PipelineError> {
    // Acknowledgements read the same in both formats.
    let said = |text: String| Answer {
        json: text.clone(),
        table: text,
    };
    Ok(match command {
        Admin::Jobs => {
            return Err(PipelineError::Usage {
                message: format!(
                    "{url} keeps no load records of its own: a run into Milvus records its job in the engine directory or stage it went through"
                ),
            });
        }
        Admin::List => {
            let names = client.list_collections().await?;
            Answer {
                json: format!(
                    "{}\n",
                    json!({"server": url, "version": version, "collections": names})
                ),
                table: format!("Milvus {version} at {url}\n{}\n", names.join("\n")),
            }
        }
        Admin::Describe(name) => {
            let schema = client.describe_collection(name).await?;
            let fields: Vec<Value> = schema
                .fields
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name, "data_type": f.data_type, "primary_key": f.is_primary_key,
                        "auto_id": f.auto_id, "partition_key": f.is_partition_key,
                        "params": f.type_params.iter().map(|kv| (kv.key.clone(), Value::String(kv.value.clone()))).collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            let d = json!({"name": name, "server": url, "version": version, "dynamic_field": schema.enable_dynamic_field, "fields": fields});
            let pretty = serde_json::to_string_pretty(&d).map_err(|e| PipelineError::Internal {
                message: e.to_string(),
            })?;
            said(format!("{pretty}\n"))
        }
        Admin::Drop(name) => {
            client.drop_collection(name).await?;
            said(format!("dropped {name} on {url}\n"))
        }
        Admin::Load(name) => {
            client.load(name).await?;
            said(format!("loaded {name} on {url}\n"))
        }
        Admin::Release(name) => {
            client.release(name).await?;
            said(format!("released {name} on {url}\n"))
        }
    })
}

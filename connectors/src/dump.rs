//! pg_dump files as a source, with no server: plain SQL (optionally gzip'd), the custom archive,
//! the directory format and the tar format. The DDL becomes the same catalog the live source reads from
//! `pg_catalog`, and the data (COPY text or INSERT statements) goes through the live source's
//! own binary decoders after a text-to-binary step, so a table read from a dump and from the
//! server it was dumped from gives the same Arrow values.

mod archive;
mod copytext;
mod custom;
mod ddl;
mod definition;
mod insert;
mod provider;
mod sql;
mod value;

pub use archive::{At, Block, Compression, DumpArchive, DumpFormat, Skipped};
pub use copytext::CopyLine;
pub use provider::DumpTableProvider;
pub use value::{TextField, encode};

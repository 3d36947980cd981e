//! FLV files (Adobe Flash Video File Format, v10.1, Annex E): the container recordings are
//! written in and VOD reads. Sans-IO like the rest of `proto`: bytes in and out, no files.

pub(crate) mod recovery;
pub(crate) mod writer;

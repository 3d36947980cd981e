//! The natives under a script's `File` (prelude.js builds AMS's File class on them): stat,
//! read, write, list, remove, mkdir and rename of paths inside the application's folder
//! only (`app_dir::file_path`: never out of it by `..`, an absolute path or a link). A path
//! that escapes throws; an I/O failure is `false` (or `null`), as AMS's File methods answer.
//! They run on the script thread, under the entry's time budget; a read is capped at the
//! instance's memory budget, so a file cannot be read past what the heap may hold.

use std::path::{Path, PathBuf};

use rquickjs::{Ctx, Exception, Function};
use serde_json::json;

use super::app_dir;

fn path<'js>(ctx: &Ctx<'js>, folder: &Path, name: &str) -> rquickjs::Result<PathBuf> {
    app_dir::file_path(folder, name).map_err(|e| Exception::throw_message(ctx, &e))
}

/// Installs `__file_stat`, `__file_read`, `__file_write`, `__file_list`, `__file_remove`,
/// `__file_mkdir` and `__file_rename` for the application in `folder`.
pub(super) fn install<'js>(ctx: &Ctx<'js>, folder: &Path, max_read: usize) -> rquickjs::Result<()> {
    let g = ctx.globals();
    let f = folder.to_path_buf();
    g.set(
        "__file_stat",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, name: String| {
            let p = path(&ctx, &f, &name)?;
            let m = std::fs::metadata(&p).ok();
            let modified = m
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as f64);
            Ok::<_, rquickjs::Error>(
                json!({
                    "exists": m.is_some(),
                    "isFile": m.as_ref().is_some_and(|m| m.is_file()),
                    "isDirectory": m.as_ref().is_some_and(|m| m.is_dir()),
                    "length": m.as_ref().map_or(0, |m| m.len()),
                    "lastModified": modified,
                })
                .to_string(),
            )
        })?,
    )?;
    let f = folder.to_path_buf();
    g.set(
        "__file_read",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, name: String| {
            let p = path(&ctx, &f, &name)?;
            let too_big = std::fs::metadata(&p).is_ok_and(|m| m.len() > max_read as u64);
            if too_big {
                let msg = format!("File({name:?}): larger than the memory budget");
                return Err(Exception::throw_message(&ctx, &msg));
            }
            Ok(std::fs::read(&p)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned()))
        })?,
    )?;
    let f = folder.to_path_buf();
    g.set(
        "__file_write",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, name: String, text: String, append: bool| {
                use std::io::Write;
                let p = path(&ctx, &f, &name)?;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .append(append)
                    .truncate(!append)
                    .open(&p);
                Ok::<_, rquickjs::Error>(
                    file.and_then(|mut f| f.write_all(text.as_bytes())).is_ok(),
                )
            },
        )?,
    )?;
    let f = folder.to_path_buf();
    g.set(
        "__file_list",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, name: String| {
            let p = path(&ctx, &f, &name)?;
            let Ok(entries) = std::fs::read_dir(&p) else {
                return Ok(None);
            };
            let mut names: Vec<String> = entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect();
            names.sort();
            Ok::<_, rquickjs::Error>(Some(json!(names).to_string()))
        })?,
    )?;
    let f = folder.to_path_buf();
    g.set(
        "__file_remove",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, name: String| {
            let p = path(&ctx, &f, &name)?;
            let root = f.canonicalize().ok();
            if root.as_deref() == Some(p.as_path()) {
                return Ok(false); // Never the application folder itself.
            }
            let done = if p.is_dir() {
                std::fs::remove_dir(&p)
            } else {
                std::fs::remove_file(&p)
            };
            Ok::<_, rquickjs::Error>(done.is_ok())
        })?,
    )?;
    let f = folder.to_path_buf();
    g.set(
        "__file_mkdir",
        Function::new(ctx.clone(), move |ctx: Ctx<'js>, name: String| {
            let p = path(&ctx, &f, &name)?;
            Ok::<_, rquickjs::Error>(std::fs::create_dir(&p).is_ok())
        })?,
    )?;
    let f = folder.to_path_buf();
    g.set(
        "__file_rename",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, from: String, to: String| {
                let (from, to) = (path(&ctx, &f, &from)?, path(&ctx, &f, &to)?);
                Ok::<_, rquickjs::Error>(std::fs::rename(from, to).is_ok())
            },
        )?,
    )?;
    Ok(())
}

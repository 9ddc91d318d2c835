//! The Dockerfile frontend: reads the Dockerfile from the context, parses it
//! ([`parser`]), types its instructions ([`instructions`]) with BuildKit's word expansion
//! ([`shell`]), and lowers them into the solver's [`crate::plan::Plan`] ([`lower`]).

pub mod instructions;
pub mod lower;
pub mod parser;
pub mod shell;

use std::path::Path;

pub use lower::{Lowerer, plan};

use crate::Error;
use crate::context::Context;

/// Opens a context directory on this machine and reads its Dockerfile (`dockerfile`
/// relative to the context, or absolute). Returns the context, the Dockerfile's text and
/// its name for messages.
pub fn open_context(root: &Path, dockerfile: &str) -> Result<(Context, String, String), Error> {
    let ctx = Context::from_dir(root, Path::new(dockerfile)).map_err(|e| Error::PrepareContext(Box::new(e)))?;
    let text = read_dockerfile(&ctx, dockerfile)?;
    Ok((ctx, text, dockerfile_name(dockerfile)))
}

/// Unpacks an uploaded context under `work_dir` and reads its Dockerfile.
pub fn open_tar_context(
    reader: &mut (dyn std::io::Read + Send),
    work_dir: &Path,
    dockerfile: &str,
) -> Result<(Context, String, String), Error> {
    let ctx = Context::from_tar(reader, work_dir, dockerfile).map_err(|e| Error::PrepareContext(Box::new(e)))?;
    let text = read_dockerfile(&ctx, dockerfile)?;
    Ok((ctx, text, dockerfile_name(dockerfile)))
}

fn dockerfile_name(dockerfile: &str) -> String {
    Path::new(dockerfile).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "Dockerfile".into())
}

fn read_dockerfile(ctx: &Context, dockerfile: &str) -> Result<String, Error> {
    let missing = |_| Error::DockerfileNotFound { name: dockerfile.to_owned() };
    let bytes = if Path::new(dockerfile).is_absolute() {
        std::fs::read(dockerfile).map_err(missing)?
    } else {
        berth_base::fsroot::read_in_root(&ctx.root, dockerfile).map_err(missing)?
    };
    String::from_utf8(bytes).map_err(|_| Error::DockerfileNotUtf8 { name: dockerfile.to_owned() })
}

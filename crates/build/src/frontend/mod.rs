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
    let ctx = Context::from_tar(&mut *reader, work_dir, dockerfile).map_err(|e| Error::PrepareContext(Box::new(e)))?;
    // The tar reader stops at the archive's end marker, but clients send padding after it
    // (a second zero block, a record's worth). Read that too, as dockerd does, or a build
    // that needs nothing more (every step cached) answers and closes while the client is
    // still writing, and the client sees a broken pipe. Bounded: a client that keeps
    // sending after the archive ended is not waited for.
    let _ = std::io::copy(&mut std::io::Read::take(&mut *reader, TRAILER_LIMIT), &mut std::io::sink());
    let text = read_dockerfile(&ctx, dockerfile)?;
    Ok((ctx, text, dockerfile_name(dockerfile)))
}

/// How much a build upload may carry after its tar archive ends (padding) that is still
/// read before the build answers.
const TRAILER_LIMIT: u64 = 1 << 20;

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

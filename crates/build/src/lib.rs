//! The image builder's front half: the Dockerfile language (parser, typed instructions,
//! BuildKit's shell-word expansion), the build context (.dockerignore, tar or directory),
//! and COPY/ADD file operations. The build engine that runs steps lives in the daemon and
//! reaches containers only through the daemon; nothing here knows HTTP.

pub mod cache;
pub mod context;
pub mod copy;
pub mod dockerignore;
pub mod executor;
pub mod instructions;
pub mod parser;
pub mod shell;

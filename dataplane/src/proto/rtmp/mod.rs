//! RTMP: handshake, chunk stream, protocol control messages and commands.

//! Fuzz entry points for the RTMP handshake, chunk stream and messages.

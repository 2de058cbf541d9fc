//! Translation between wire formats, through Chat as the hub: OpenAI Chat ⇄ Anthropic Messages
//! both ways (requests, answers, streams, errors, tools, structured output).
pub mod anthropic;

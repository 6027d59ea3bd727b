"""Claude through the official `anthropic` SDK: the client (key, retries), the response cache that
never pays twice, the one tool-use loop, and the price table. The teacher, the judge and the
assistant build on these; none of them talks HTTP itself."""

// The official TypeScript SDK against the student server: stream a request (read as JSON on stdin), count
// its tokens and list the models; prints one JSON object. Run by tests/test_serve_stream.py.
import Anthropic from '@anthropic-ai/sdk';
import { readFileSync } from 'node:fs';

const [baseURL] = process.argv.slice(2);
const request = JSON.parse(readFileSync(0, 'utf8'));
const client = new Anthropic({ baseURL, apiKey: 'test', maxRetries: 0 });

let textDeltas = 0;
const stream = client.messages.stream(request);
stream.on('text', () => { textDeltas += 1; });
const final = await stream.finalMessage();
const { max_tokens, ...conversation } = request;
const count = await client.messages.countTokens(conversation);
const models = [];
for await (const model of client.models.list()) models.push(model.id);
console.log(JSON.stringify({ text_deltas: textDeltas, final, count: count.input_tokens, models }));

// The fake Gemini upstream is faithful: Google's own SDK (@google/genai) talks to it as to
// generativelanguage.googleapis.com and reads what it answers.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, GoogleGenAI } from '@google/genai';
import { fakeVector, GEMINI_KEY, quotaBody, startGemini, type GeminiUpstream } from './helpers/gemini-upstream.js';

describe('fake Gemini upstream, driven by @google/genai', () => {
  let fake: GeminiUpstream;
  let ai: GoogleGenAI;
  before(async () => {
    fake = await startGemini();
    ai = new GoogleGenAI({ apiKey: GEMINI_KEY, httpOptions: { baseUrl: fake.url } });
  });
  after(() => fake.close());

  it('generateContent: the SDK reads text, function calls and usage', async () => {
    fake.next({
      kind: 'answer',
      body: {
        candidates: [
          {
            content: { role: 'model', parts: [{ text: 'Checking.' }, { functionCall: { name: 'get_weather', args: { city: 'Paris' } }, thoughtSignature: 'c2lnLTE=' }] },
            finishReason: 'STOP',
            index: 0,
          },
        ],
        usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 9, thoughtsTokenCount: 4, totalTokenCount: 24 },
        responseId: 'r-1',
      },
    });
    const res = await ai.models.generateContent({
      model: 'gemini-2.5-flash',
      contents: 'Weather in Paris?',
      config: { systemInstruction: 'Be brief.', maxOutputTokens: 50, tools: [{ functionDeclarations: [{ name: 'get_weather', parameters: { type: 'OBJECT' as never, properties: { city: { type: 'STRING' as never } } } }] }] },
    });
    assert.equal(res.text, 'Checking.');
    assert.deepEqual(res.functionCalls, [{ name: 'get_weather', args: { city: 'Paris' } }]);
    assert.equal(res.usageMetadata?.thoughtsTokenCount, 4);
    assert.equal(res.responseId, 'r-1');
    const got = fake.last;
    assert.equal(got.action, 'generateContent');
    assert.equal(got.model, 'gemini-2.5-flash');
    assert.equal(got.headers['x-goog-api-key'], GEMINI_KEY);
    assert.deepEqual(got.body['systemInstruction'], { parts: [{ text: 'Be brief.' }], role: 'user' });
    assert.deepEqual((got.body['generationConfig'] as Record<string, unknown>)['maxOutputTokens'], 50);
  });

  it('generateContentStream: the SDK reads each SSE event as a chunk, usage in the last', async () => {
    fake.next({
      kind: 'stream',
      events: [
        { candidates: [{ content: { role: 'model', parts: [{ text: 'Thinking of it', thought: true }] }, index: 0 }], usageMetadata: { promptTokenCount: 3 } },
        { candidates: [{ content: { role: 'model', parts: [{ text: 'Hi' }] }, index: 0 }], usageMetadata: { promptTokenCount: 3 } },
        { candidates: [{ content: { role: 'model', parts: [{ text: ' there' }] }, finishReason: 'STOP', index: 0 }], usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5 } },
      ],
    });
    const texts: string[] = [];
    let thoughts = '';
    let finish: string | undefined;
    let total: number | undefined;
    for await (const chunk of await ai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hi' })) {
      for (const p of chunk.candidates?.[0]?.content?.parts ?? []) {
        if (p.thought === true) thoughts += p.text ?? '';
        else if (p.text !== undefined) texts.push(p.text);
      }
      finish = chunk.candidates?.[0]?.finishReason ?? finish;
      total = chunk.usageMetadata?.totalTokenCount ?? total;
    }
    assert.deepEqual(texts, ['Hi', ' there']);
    assert.equal(thoughts, 'Thinking of it');
    assert.equal(finish, 'STOP');
    assert.equal(total, 5);
    assert.equal(fake.last.action, 'streamGenerateContent');
    assert.equal(fake.last.query.get('alt'), 'sse');
  });

  it('embedContent: the SDK gets one vector per input (it calls batchEmbedContents)', async () => {
    const res = await ai.models.embedContent({ model: 'gemini-embedding-001', contents: ['one', 'three'], config: { outputDimensionality: 4 } });
    assert.deepEqual(
      res.embeddings?.map((e) => e.values),
      [fakeVector('one', 4), fakeVector('three', 4)],
    );
    assert.equal(fake.last.action, 'batchEmbedContents');
  });

  it('a bad key surfaces as the SDK ApiError 400 with Google message', async () => {
    const bad = new GoogleGenAI({ apiKey: 'wrong', httpOptions: { baseUrl: fake.url } });
    await assert.rejects(bad.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' }), (e: unknown) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.status, 400);
      assert.match(e.message, /API key not valid/);
      assert.match(e.message, /API_KEY_INVALID/);
      return true;
    });
  });

  it('an exhausted quota surfaces as ApiError 429 with RetryInfo in the body', async () => {
    fake.next({ kind: 'error', status: 429, body: quotaBody('17s') });
    await assert.rejects(ai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hi' }), (e: unknown) => {
      assert.ok(e instanceof ApiError);
      assert.equal(e.status, 429);
      assert.match(e.message, /RESOURCE_EXHAUSTED/);
      assert.match(e.message, /17s/);
      return true;
    });
  });
});

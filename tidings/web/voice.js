// A voice room in the page: microphone -> 20 ms frames -> Opus (WebCodecs AudioEncoder; PCM
// at 16 kHz where WebCodecs is missing) -> binary frames on the room's voice: channel; and
// back: each speaker's frames -> AudioDecoder -> the playback worklet's jitter buffer.
// Who is speaking comes from the node (speaking/silent pushes), not from this code.
import { VoiceKind } from "./tidings.js";

const RATE = 48000, FRAME = 960;
const OPUS = { codec: "opus", sampleRate: RATE, numberOfChannels: 1, bitrate: 24000, opus: { frameDuration: 20000 } };

export class VoiceRoom {
  constructor(client, channel, { onWhisper = () => {}, onStats = () => {} } = {}) {
    this.client = client;
    this.channel = channel;
    this.onWhisper = onWhisper;
    this.onStats = onStats;
    this.muted = false;
    this.whisperTo = null;      // while push-to-talk is held
    this.codec = "none";
    this.stats = { sent: 0, received: {}, decoded: {}, audible: {} };
    this.decoders = new Map();
    this.targets = [];          // whisper target of each frame handed to the encoder, in order
    this.seqTime = 0;
  }

  async start() {
    this.sub = this.client.subscription(this.channel);
    this.sub.on("voice", (frame) => this._heard(frame));
    await this.sub.subscribe();
    this.ctx = new AudioContext({ sampleRate: RATE });
    await this.ctx.audioWorklet.addModule("/voice-worklet.js");
    this.playback = new AudioWorkletNode(this.ctx, "tidings-playback", { outputChannelCount: [1] });
    this.playback.connect(this.ctx.destination);
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    } catch (err) {
      this.codec = "listen-only"; this._stats(); return; // no microphone: still hear the room
    }
    const source = this.ctx.createMediaStreamSource(this.stream);
    this.capture = new AudioWorkletNode(this.ctx, "tidings-capture");
    const sink = this.ctx.createGain();
    sink.gain.value = 0;
    source.connect(this.capture).connect(sink).connect(this.ctx.destination);
    if (globalThis.AudioEncoder && (await AudioEncoder.isConfigSupported(OPUS)).supported) {
      this.encoder = new AudioEncoder({ output: (chunk) => this._encoded(chunk), error: (e) => console.error(e) });
      this.encoder.configure(OPUS);
      this.codec = "opus";
    } else this.codec = "pcm";
    this.capture.port.onmessage = (event) => this._captured(event.data);
    this._stats();
  }

  _captured(samples) {
    if (this.muted && !this.whisperTo) return;
    const to = this.whisperTo;
    if (this.encoder) {
      this.targets.push(to);
      this.seqTime += FRAME;
      this.encoder.encode(new AudioData({ format: "f32", sampleRate: RATE, numberOfFrames: FRAME, numberOfChannels: 1, timestamp: Math.round(this.seqTime * 1e6 / RATE), data: samples }));
    } else {
      this._send(toPcm16k(samples), VoiceKind.PCM, to);
    }
  }

  _encoded(chunk) {
    const bytes = new Uint8Array(chunk.byteLength);
    chunk.copyTo(bytes);
    this._send(bytes, VoiceKind.OPUS, this.targets.shift() ?? null);
  }

  _send(bytes, kind, to) {
    if (this.client.sendVoice(this.channel, bytes, { kind, to })) this.stats.sent++;
  }

  /** A whispered text line to one member; nobody else receives it. */
  whisperText(to, text) { return this.client.sendVoice(this.channel, text, { kind: VoiceKind.TEXT, to }); }

  _heard(frame) {
    const who = frame.sender;
    if (frame.kind === VoiceKind.TEXT) { this.onWhisper(frame); return; }
    this.stats.received[who] = (this.stats.received[who] || 0) + 1;
    if (frame.kind === VoiceKind.PCM) { this._play(who, fromPcm16k(frame.payload)); return; }
    let decoder = this.decoders.get(who);
    if (!decoder) {
      decoder = new AudioDecoder({ output: (data) => this._decoded(who, data), error: (e) => console.error(e) });
      decoder.configure({ codec: "opus", sampleRate: RATE, numberOfChannels: 1 });
      this.decoders.set(who, decoder);
    }
    decoder.decode(new EncodedAudioChunk({ type: "key", timestamp: frame.timestamp * 1000, data: frame.payload }));
  }

  _decoded(who, data) {
    const samples = new Float32Array(data.numberOfFrames);
    data.copyTo(samples, { planeIndex: 0, format: "f32-planar" });
    data.close();
    this._play(who, samples);
  }

  _play(who, samples) {
    this.stats.decoded[who] = (this.stats.decoded[who] || 0) + 1;
    let sum = 0;
    for (const s of samples) sum += s * s;
    if (Math.sqrt(sum / samples.length) > 0.001) this.stats.audible[who] = (this.stats.audible[who] || 0) + 1;
    this.playback?.port.postMessage({ sender: who, samples }, [samples.buffer]);
    this._stats();
  }

  _stats() { this.onStats({ ...this.stats, codec: this.codec }); }

  async stop() {
    this.capture?.port.close();
    this.encoder?.state !== "closed" && this.encoder?.close();
    for (const d of this.decoders.values()) if (d.state !== "closed") d.close();
    this.stream?.getTracks().forEach((t) => t.stop());
    await this.ctx?.close();
    await this.sub?.unsubscribe();
  }
}

/** 48 kHz float -> 16 kHz 16-bit little-endian PCM (the fallback codec). */
function toPcm16k(samples) {
  const out = new DataView(new ArrayBuffer((samples.length / 3) * 2));
  for (let i = 0; i < samples.length / 3; i++) {
    const s = (samples[3 * i] + samples[3 * i + 1] + samples[3 * i + 2]) / 3;
    out.setInt16(2 * i, Math.max(-1, Math.min(1, s)) * 0x7fff, true);
  }
  return new Uint8Array(out.buffer);
}

function fromPcm16k(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength / 2, out = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) out.fill(view.getInt16(2 * i, true) / 0x7fff, 3 * i, 3 * i + 3);
  return out;
}

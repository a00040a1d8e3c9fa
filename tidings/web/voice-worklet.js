// AudioWorklet processors of the voice room: capture cuts the microphone into 20 ms frames
// (960 samples at 48 kHz) for the encoder; playback mixes each speaker's decoded frames
// through a small jitter buffer (starts after 3 frames, drops beyond 10: late audio is worth
// nothing, so it never piles up).
const FRAME = 960;

class Capture extends AudioWorkletProcessor {
  constructor() { super(); this.buffer = new Float32Array(FRAME); this.filled = 0; }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    let at = 0;
    while (at < input.length) {
      const take = Math.min(FRAME - this.filled, input.length - at);
      this.buffer.set(input.subarray(at, at + take), this.filled);
      this.filled += take; at += take;
      if (this.filled === FRAME) {
        this.port.postMessage(this.buffer.slice(0));
        this.filled = 0;
      }
    }
    return true;
  }
}

class Playback extends AudioWorkletProcessor {
  constructor() {
    super();
    this.streams = new Map(); // sender -> {frames: Float32Array[], at, started}
    this.port.onmessage = (event) => {
      const { sender, samples } = event.data;
      let stream = this.streams.get(sender);
      if (!stream) { stream = { frames: [], at: 0, started: false }; this.streams.set(sender, stream); }
      stream.frames.push(samples);
      if (stream.frames.length > 10) { stream.frames.splice(0, stream.frames.length - 3); stream.at = 0; }
      if (stream.frames.length >= 3) stream.started = true;
    };
  }
  process(_, outputs) {
    const out = outputs[0][0];
    out.fill(0);
    for (const stream of this.streams.values()) {
      if (!stream.started) continue;
      for (let i = 0; i < out.length; i++) {
        const frame = stream.frames[0];
        if (!frame) { stream.started = false; break; }
        out[i] += frame[stream.at++];
        if (stream.at >= frame.length) { stream.frames.shift(); stream.at = 0; }
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    return true;
  }
}

registerProcessor("tidings-capture", Capture);
registerProcessor("tidings-playback", Playback);

# Adapted from run_server.py of collabora/WhisperLive (https://github.com/collabora/WhisperLive),
# MIT licence, Copyright (c) 2023 Vineet Suryan, Collabora Ltd.; see LICENSE.WhisperLive beside this file.
# run_server.py is not shipped in the whisper-live wheel; these are its lines that start the WebSocket server,
# trimmed to the options benchmarks/peers.py uses (same names, same defaults, same OMP_NUM_THREADS handling).
# It runs in the WhisperLive virtualenv that benchmarks/peers.py builds, not in callscribe's environment.
import argparse
import os

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument('--port', '-p', type=int, default=9090, help="Websocket port to run the server on.")
    parser.add_argument('--backend', '-b', type=str, default='faster_whisper',
                        help='Backends from ["tensorrt", "faster_whisper", "openvino"]')
    parser.add_argument('--faster_whisper_custom_model_path', '-fw', type=str, default=None,
                        help="Custom Faster Whisper Model")
    parser.add_argument('--omp_num_threads', '-omp', type=int, default=1, help="Number of threads to use for OpenMP")
    parser.add_argument('--no_single_model', '-nsm', action='store_true',
                        help='Set this if every connection should instantiate its own model. '
                             'Only relevant for custom model, passed using -trt or -fw.')
    parser.add_argument('--max_clients', type=int, default=4, help='Maximum clients supported by the server.')
    parser.add_argument('--max_connection_time', type=int, default=300,
                        help='The maximum duration (in seconds) a client can stay connected.')
    parser.add_argument('--cache_path', '-c', type=str, default="~/.cache/whisper-live/",
                        help='Path to cache the converted ctranslate2 models.')
    parser.add_argument('--batch_inference', action='store_true',
                        help='Enable batched inference for concurrent sessions.')
    parser.add_argument('--batch_max_size', type=int, default=8,
                        help='Maximum batch size for batched inference (default: 8).')
    parser.add_argument('--batch_window_ms', type=int, default=50,
                        help='Maximum time in ms to wait for batch to fill (default: 50).')
    parser.add_argument('--host', type=str, default="0.0.0.0", help="(benchmark addition) interface to listen on")
    args = parser.parse_args()

    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(args.omp_num_threads)

    from whisper_live.server import TranscriptionServer
    server = TranscriptionServer()
    server.run(
        args.host,
        port=args.port,
        backend=args.backend,
        faster_whisper_custom_model_path=args.faster_whisper_custom_model_path,
        single_model=not args.no_single_model,
        max_clients=args.max_clients,
        max_connection_time=args.max_connection_time,
        cache_path=args.cache_path,
        batch_enabled=args.batch_inference,
        batch_max_size=args.batch_max_size,
        batch_window_ms=args.batch_window_ms,
    )

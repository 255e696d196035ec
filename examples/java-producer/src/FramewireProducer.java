import java.io.IOException;
import java.net.ConnectException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Sends JPEG files as camera frames to framewire's HTTP receiver, as its wire contract says
 * (README.md, "Wire contract"): {@code POST /frames}, the JPEG as the body, {@code
 * Content-Type: image/jpeg}, headers {@code X-Framewire-Camera}, {@code X-Framewire-Seq} and
 * {@code X-Framewire-Captured-Ns}, and {@code Authorization: Bearer <token>} when a token is
 * given. Only the JDK: java.net.http.HttpClient, which keeps the connection alive.
 */
public final class FramewireProducer {
  static final String USAGE =
      """
      usage: java -cp build FramewireProducer [options] JPEG_FILE_OR_DIR...

      Sends the JPEG files (a directory: its *.jpg and *.jpeg files, by name) in turn as the
      frames of one camera to framewire's HTTP receiver, at --fps, --count frames in all.

      options (each also read from the environment variable named after it):
        --http-url URL   where to POST frames
                         [FRAMEWIRE_HTTP_URL; default http://127.0.0.1:8001/frames]
        --token TOKEN    bearer token for the receiver [FRAMEWIRE_TOKEN; default none]
        --camera ID      camera id, [A-Za-z0-9][A-Za-z0-9_.-]{0,63}
                         [FRAMEWIRE_CAMERA; default cam0]
        --fps N          frames per second; 0: as fast as the receiver takes them
                         [FRAMEWIRE_FPS; default 10]
        --count N        frames to send; 0: until stopped [FRAMEWIRE_COUNT; default 0]
        --timeout S      seconds to wait for the receiver [FRAMEWIRE_TIMEOUT; default 2]
        -h, --help       this help

      Exit status: 0 when frames were delivered; 1 when the receiver refused a frame (4xx:
      its JSON reason is printed, e.g. "unauthorized"); 2 on a usage error; 3 when no frame
      could be delivered (unreachable). On exit it prints one JSON line of counts to stdout.""";

  static final Pattern CAMERA = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
  static final Pattern JSON_FIELD = Pattern.compile("\"(error|detail)\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"");

  static final class UsageError extends Exception {
    private static final long serialVersionUID = 1L;

    UsageError(String message) {
      super(message);
    }
  }

  /** The receiver answered 4xx: the frame will never be accepted as sent. */
  static final class Refused extends Exception {
    private static final long serialVersionUID = 1L;
    final int status;
    final String reason;

    Refused(int status, String reason, String detail) {
      super("HTTP receiver refused the frame: " + status + " " + reason
          + (detail.isEmpty() ? "" : " (" + detail + ")"));
      this.status = status;
      this.reason = reason;
    }
  }

  record Options(String httpUrl, String token, String camera, double fps, long count,
      Duration timeout, List<String> paths) {}

  public static void main(String[] args) throws InterruptedException {
    System.exit(run(args, System.getenv()));
  }

  static int run(String[] args, Map<String, String> env) throws InterruptedException {
    Options opts;
    List<byte[]> jpegs;
    try {
      if (List.of(args).contains("-h") || List.of(args).contains("--help")) {
        System.out.println(USAGE);
        return 0;
      }
      opts = parse(args, env);
      jpegs = readJpegs(opts.paths());
    } catch (UsageError e) {
      System.err.println("error: " + e.getMessage() + " (--help: usage)");
      return 2;
    }

    HttpClient client = HttpClient.newBuilder()
        .version(HttpClient.Version.HTTP_1_1) // plain keep-alive; no h2c upgrade attempt
        .connectTimeout(opts.timeout())
        .build();
    // Ctrl-C or SIGTERM: stop after the frame in flight and print the counts before exiting.
    Thread worker = Thread.currentThread();
    CountDownLatch done = new CountDownLatch(1);
    boolean[] stopping = {false};
    Thread hook = new Thread(() -> {
      stopping[0] = true;
      worker.interrupt();
      try {
        done.await(5, TimeUnit.SECONDS);
      } catch (InterruptedException ignored) {
        // exiting anyway
      }
    });
    Runtime.getRuntime().addShutdownHook(hook);

    System.err.printf("sending %d JPEG file(s) as camera %s at %s fps to http %s%n", jpegs.size(),
        opts.camera(), opts.fps() > 0 ? fmt(opts.fps()) : "max", redact(opts.httpUrl()));
    long sent = 0;
    long errors = 0;
    Refused refused = null;
    String lastError = null;
    long dropped = 0;
    long intervalNs = opts.fps() > 0 ? Math.round(1e9 / opts.fps()) : 0;
    long started = System.nanoTime();
    for (long i = 0; !stopping[0] && (opts.count() == 0 || i < opts.count()); i++) {
      if (intervalNs > 0) {
        long lateNs = System.nanoTime() - (started + i * intervalNs);
        if (lateNs >= intervalNs) {
          // A slow send let later frames fall due: skip to the newest one (the latest frame
          // wins, nothing queues up), never past the last frame, and count the skipped ones.
          long newest = i + lateNs / intervalNs;
          if (opts.count() > 0) {
            newest = Math.min(newest, opts.count() - 1);
          }
          dropped += newest - i;
          i = newest;
        } else if (lateNs < 0) {
          try {
            Thread.sleep(-lateNs / 1_000_000, (int) (-lateNs % 1_000_000));
          } catch (InterruptedException e) {
            break;
          }
        }
      }
      byte[] jpeg = jpegs.get((int) (i % jpegs.size()));
      try {
        send(client, opts, i + 1, capturedNs(), jpeg);
        sent++;
      } catch (Refused e) {
        refused = e;
        break;
      } catch (IOException e) {
        errors++;
        String message = e instanceof HttpTimeoutException ? "timeout"
            : e instanceof ConnectException ? "cannot connect (ConnectException)"
            : e.getClass().getSimpleName() + (e.getMessage() == null ? "" : ": " + e.getMessage());
        if (!message.equals(lastError)) {
          System.err.println("http: send failed: " + message + " (counted; going on)");
          lastError = message;
        }
      } catch (InterruptedException e) {
        break;
      }
    }

    StringBuilder summary = new StringBuilder();
    summary.append("{\"camera\": \"").append(opts.camera()).append("\", \"http\": {\"sent\": ")
        .append(sent).append(", \"dropped\": ").append(dropped).append(", \"errors\": ")
        .append(errors).append('}');
    if (refused != null) {
      summary.append(", \"refused\": {\"status\": ").append(refused.status)
          .append(", \"reason\": \"").append(jsonEscape(refused.reason)).append("\"}");
      System.err.println("error: " + refused.getMessage());
    }
    System.out.println(summary.append('}'));
    System.out.flush();
    done.countDown();
    if (refused != null) {
      return 1;
    }
    return sent == 0 && errors > 0 ? 3 : 0;
  }

  /** Capture time: nanoseconds since the Unix epoch (a long holds it until the year 2262). */
  static long capturedNs() {
    Instant now = Instant.now();
    return now.getEpochSecond() * 1_000_000_000L + now.getNano();
  }

  static void send(HttpClient client, Options opts, long seq, long capturedNs, byte[] jpeg)
      throws IOException, InterruptedException, Refused {
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(opts.httpUrl()))
        .timeout(opts.timeout())
        .header("Content-Type", "image/jpeg")
        .header("X-Framewire-Camera", opts.camera())
        .header("X-Framewire-Seq", Long.toString(seq))
        .header("X-Framewire-Captured-Ns", Long.toString(capturedNs))
        .POST(HttpRequest.BodyPublishers.ofByteArray(jpeg));
    if (!opts.token().isEmpty()) {
      request.header("Authorization", "Bearer " + opts.token());
    }
    HttpResponse<String> response = client.send(request.build(), HttpResponse.BodyHandlers.ofString());
    int status = response.statusCode();
    if (status >= 200 && status < 300) {
      return;
    }
    // Refusals carry {"error": "<reason>", "detail": "..."}.
    String reason = "status_" + status;
    String detail = "";
    Matcher field = JSON_FIELD.matcher(response.body());
    while (field.find()) {
      String value = field.group(2).replace("\\\"", "\"").replace("\\\\", "\\");
      if (field.group(1).equals("error")) {
        reason = value;
      } else {
        detail = value;
      }
    }
    if (status >= 400 && status < 500) {
      throw new Refused(status, reason, detail);
    }
    throw new IOException(status + " " + reason); // 5xx, e.g. 503 stopping: try the next frame
  }

  static Options parse(String[] args, Map<String, String> env) throws UsageError {
    Map<String, String> names = Map.of("--http-url", "FRAMEWIRE_HTTP_URL", "--token",
        "FRAMEWIRE_TOKEN", "--camera", "FRAMEWIRE_CAMERA", "--fps", "FRAMEWIRE_FPS", "--count",
        "FRAMEWIRE_COUNT", "--timeout", "FRAMEWIRE_TIMEOUT");
    HashMap<String, String> values = new HashMap<>();
    List<String> paths = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      if (arg.equals("--")) {
        paths.addAll(List.of(args).subList(i + 1, args.length));
        break;
      }
      if (!arg.startsWith("--")) {
        paths.add(arg);
        continue;
      }
      String name = arg;
      String value = null;
      int eq = arg.indexOf('=');
      if (eq > 0) {
        name = arg.substring(0, eq);
        value = arg.substring(eq + 1);
      }
      if (!names.containsKey(name)) {
        throw new UsageError("unknown option " + name);
      }
      if (value == null) {
        if (i + 1 >= args.length) {
          throw new UsageError(name + " needs a value");
        }
        value = args[++i];
      }
      values.put(name, value);
    }
    BiFunction<String, String, String> pick =
        (name, fallback) -> values.getOrDefault(name, env.getOrDefault(names.get(name), fallback));

    String httpUrl = pick.apply("--http-url", "http://127.0.0.1:8001/frames");
    try {
      URI uri = URI.create(httpUrl);
      if (!"http".equals(uri.getScheme()) && !"https".equals(uri.getScheme())) {
        throw new IllegalArgumentException();
      }
    } catch (IllegalArgumentException e) {
      throw new UsageError("--http-url (FRAMEWIRE_HTTP_URL) must be an http:// or https:// URL");
    }
    String camera = pick.apply("--camera", "cam0");
    if (!CAMERA.matcher(camera).matches()) {
      throw new UsageError("--camera (FRAMEWIRE_CAMERA) must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}");
    }
    double fps = number("--fps", pick.apply("--fps", "10"), names);
    double count = number("--count", pick.apply("--count", "0"), names);
    if (count != Math.rint(count)) {
      throw new UsageError("--count (FRAMEWIRE_COUNT) must be a non-negative integer");
    }
    double timeout = number("--timeout", pick.apply("--timeout", "2"), names);
    if (timeout <= 0) {
      throw new UsageError("--timeout (FRAMEWIRE_TIMEOUT) must be above 0");
    }
    return new Options(httpUrl, pick.apply("--token", ""), camera, fps, (long) count,
        Duration.ofMillis(Math.round(timeout * 1000)), paths);
  }

  static double number(String name, String text, Map<String, String> names) throws UsageError {
    try {
      double value = Double.parseDouble(text);
      if (value >= 0 && Double.isFinite(value)) {
        return value;
      }
    } catch (NumberFormatException e) {
      // below
    }
    throw new UsageError(name + " (" + names.get(name) + ") must be a non-negative number");
  }

  /** The JPEG files named (a directory: its *.jpg and *.jpeg files by name), read once. */
  static List<byte[]> readJpegs(List<String> paths) throws UsageError {
    if (paths.isEmpty()) {
      throw new UsageError("no JPEG file or directory given");
    }
    List<Path> files = new ArrayList<>();
    for (String name : paths) {
      Path path = Path.of(name);
      if (Files.isDirectory(path)) {
        try (Stream<Path> listing = Files.list(path)) {
          List<Path> found = listing
              .filter(p -> p.getFileName().toString().toLowerCase().matches(".*\\.jpe?g"))
              .sorted()
              .toList();
          if (found.isEmpty()) {
            throw new UsageError("no *.jpg or *.jpeg file in " + name);
          }
          files.addAll(found);
        } catch (IOException e) {
          throw new UsageError("cannot list " + name + ": " + e.getMessage());
        }
      } else {
        files.add(path);
      }
    }
    List<byte[]> jpegs = new ArrayList<>();
    for (Path file : files) {
      byte[] bytes;
      try {
        bytes = Files.readAllBytes(file);
      } catch (IOException e) {
        throw new UsageError("cannot read " + file + ": " + e.getClass().getSimpleName());
      }
      if (bytes.length < 4 || (bytes[0] & 0xff) != 0xff || (bytes[1] & 0xff) != 0xd8
          || (bytes[2] & 0xff) != 0xff) {
        throw new UsageError(file + " is not a JPEG");
      }
      jpegs.add(bytes);
    }
    return jpegs;
  }

  /** A URL safe to print: any user information (a password, a token) replaced by ***. */
  static String redact(String url) {
    return url.replaceFirst("//[^/@]*@", "//***@");
  }

  static String fmt(double value) {
    return value == Math.rint(value) ? Long.toString((long) value) : Double.toString(value);
  }

  static String jsonEscape(String text) {
    return text.replace("\\", "\\\\").replace("\"", "\\\"");
  }
}

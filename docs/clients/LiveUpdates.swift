// liveupdates on iOS/macOS: follow a story over WebSocket with resume, and register the device's
// APNs token so the story reaches it as a push notification while the app is closed.
// Foundation only (URLSessionWebSocketTask, async/await), iOS 15+ / macOS 12+. Follows
// docs/protocol.md; the device routes are those of the device-push API (issue 11).
//
//   let live = LiveStory(server: URL(string: "https://live.example")!, storyID: "k3v7q2mxa4pt6hne")
//   live.onUpdate = { update in print(update.summary) }   // called on the main actor
//   live.start()
//
//   // In application(_:didRegisterForRemoteNotificationsWithDeviceToken:):
//   let device = try await DeviceRegistration.register(server: server, apnsToken: deviceToken)
//   try await device.follow(storyID: "k3v7q2mxa4pt6hne")

import Foundation

// MARK: - Messages (docs/protocol.md, "Server → client")

struct StoryRef: Decodable {
    let id: String
    let title: String
    let version: Int
}

struct StoryEvent: Decodable {
    let kind: String          // "created" or "updated"
    let story: StoryRef
    let summary: String?
    let at: String?
    // `diff` is left as raw JSON here: apply it as docs/protocol.md, "Applying a diff", says, or
    // reload GET /v1/stories/{id} when its from_version is not the version you hold.
}

struct ServerMessage: Decodable {
    let type: String          // subscribed, update, reset, unsubscribed, pong, error
    let channel: String?
    let seq: Int?
    let epoch: String?
    let recovered: Bool?
    let event: StoryEvent?
    let code: String?
    let message: String?
}

// MARK: - Following a story with resume

@MainActor
final class LiveStory {
    let server: URL
    let channel: String
    var onUpdate: ((StoryEvent) -> Void)?
    var onReset: (() -> Void)?            // reload GET /v1/stories/{id}: a gap could not be replayed

    // The reader's exact position in the channel's log: kept across reconnects (and app launches,
    // if you persist it) so the server replays exactly what was missed.
    private(set) var since: Int?
    private(set) var epoch: String?
    private var task: URLSessionWebSocketTask?
    private var attempt = 0
    private var running = false

    init(server: URL, storyID: String, since: Int? = nil, epoch: String? = nil) {
        self.server = server
        self.channel = "story:\(storyID)"
        self.since = since
        self.epoch = epoch
    }

    func start() {
        running = true
        Task { await connectLoop() }
    }

    func stop() {
        running = false
        task?.cancel(with: .normalClosure, reason: nil)
    }

    private func connectLoop() async {
        var components = URLComponents(url: server, resolvingAgainstBaseURL: false)!
        components.scheme = components.scheme == "https" ? "wss" : "ws"
        components.path = "/v1/ws"
        while running {
            let task = URLSession.shared.webSocketTask(with: components.url!)
            self.task = task
            task.resume()
            do {
                try await subscribe(on: task)
                let opened = Date()
                while running {
                    let frame = try await task.receive()
                    if case .string(let text) = frame { handle(text) }
                    if Date().timeIntervalSince(opened) > 10 { attempt = 0 }  // a good connection
                }
            } catch {
                // Dropped (network change, server restart 1012, too slow 4008, ...): resume below.
            }
            guard running else { return }
            // Full jitter: random(0, min(30 s, 0.5 s x 2^attempt)).
            let cap = min(30.0, 0.5 * pow(2.0, Double(attempt)))
            attempt = min(attempt + 1, 10)
            try? await Task.sleep(nanoseconds: UInt64(Double.random(in: 0...cap) * 1e9))
        }
    }

    private func subscribe(on task: URLSessionWebSocketTask) async throws {
        var request: [String: Any] = ["type": "subscribe", "channel": channel]
        if let since { request["since"] = since; request["epoch"] = epoch }
        let data = try JSONSerialization.data(withJSONObject: request)
        try await task.send(.string(String(decoding: data, as: UTF8.self)))
    }

    private func handle(_ text: String) {
        guard let message = try? JSONDecoder().decode(ServerMessage.self, from: Data(text.utf8)),
              message.channel == channel else { return }
        switch message.type {
        case "subscribed":
            epoch = message.epoch
            // Fresh start, or a reset follows: this seq is the position. When recovering, the
            // replayed updates move it forward one by one.
            if since == nil || message.recovered == false { since = message.seq }
        case "update":
            guard let seq = message.seq, seq > (since ?? 0), let event = message.event else { return }
            since = seq
            onUpdate?(event)
        case "reset":
            since = message.seq
            onReset?()
        default:
            break  // pong, unsubscribed, error (see docs/protocol.md, "Errors")
        }
    }
}

// MARK: - Push: registering the APNs token and following a story on this device

struct DeviceRegistration: Codable {
    let server: URL
    let deviceID: String
    let secret: String   // keep it in the Keychain: it is the only way to manage this device

    /// POST /v1/devices {"platform": "apns", "token", "environment"} -> {device_id, secret}.
    static func register(server: URL, apnsToken: Data, sandbox: Bool = false) async throws -> DeviceRegistration {
        var request = URLRequest(url: server.appendingPathComponent("v1/devices"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: [
            "platform": "apns",
            "token": apnsToken.map { String(format: "%02x", $0) }.joined(),
            "environment": sandbox ? "sandbox" : "production",
        ])
        let (data, response) = try await URLSession.shared.data(for: request)
        try check(response, data)
        struct Created: Decodable { let device_id: String; let secret: String }
        let created = try JSONDecoder().decode(Created.self, from: data)
        return DeviceRegistration(server: server, deviceID: created.device_id, secret: created.secret)
    }

    /// PUT /v1/devices/{id}/subscriptions/story:<id> with the device's secret as Bearer token.
    func follow(storyID: String) async throws {
        try await subscription(storyID: storyID, method: "PUT")
    }

    /// DELETE the same subscription: no more notifications for that story.
    func unfollow(storyID: String) async throws {
        try await subscription(storyID: storyID, method: "DELETE")
    }

    private func subscription(storyID: String, method: String) async throws {
        let path = "v1/devices/\(deviceID)/subscriptions/story:\(storyID)"
        var request = URLRequest(url: server.appendingPathComponent(path))
        request.httpMethod = method
        request.setValue("Bearer \(secret)", forHTTPHeaderField: "Authorization")
        let (data, response) = try await URLSession.shared.data(for: request)
        try DeviceRegistration.check(response, data)
    }

    struct APIError: Error { let status: Int; let body: String }

    private static func check(_ response: URLResponse, _ data: Data) throws {
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        // Errors are {"error": {"code", "message"}} (docs/protocol.md, "REST").
        guard (200..<300).contains(status) else {
            throw APIError(status: status, body: String(decoding: data, as: UTF8.self))
        }
    }
}

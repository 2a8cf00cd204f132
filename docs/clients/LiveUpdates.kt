// liveupdates on Android: follow a story over an OkHttp WebSocket with resume, and register the
// device's FCM token so the story reaches it as a push notification while the app is closed.
// Needs com.squareup.okhttp3:okhttp (4.x) and org.json (part of Android). Follows
// docs/protocol.md; the device routes are those of the device-push API (issue 11).
//
//   val live = LiveStory(OkHttpClient(), "https://live.example", "k3v7q2mxa4pt6hne") { event ->
//       println(event.getString("summary"))          // called on OkHttp's thread
//   }
//   live.start()
//
//   // In FirebaseMessagingService.onNewToken(token), off the main thread:
//   val device = DeviceRegistration.register(OkHttpClient(), "https://live.example", token)
//   device.follow("k3v7q2mxa4pt6hne")

import okhttp3.MediaType.Companion.toMediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody.Companion.toRequestBody
import okhttp3.Response
import okhttp3.WebSocket
import okhttp3.WebSocketListener
import org.json.JSONObject
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlin.math.min
import kotlin.math.pow
import kotlin.random.Random

// ---------------------------------------------------------------------------------------------
// Following a story with resume
// ---------------------------------------------------------------------------------------------

class LiveStory(
    private val client: OkHttpClient,
    private val server: String,               // e.g. "https://live.example"
    storyId: String,
    // The reader's exact position in the channel's log: persist both to resume across launches.
    @Volatile var since: Long? = null,
    @Volatile var epoch: String? = null,
    private val onReset: () -> Unit = {},     // reload GET /v1/stories/{id}: a gap could not be replayed
    private val onUpdate: (JSONObject) -> Unit,  // the update's "event" (kind, story, diff, summary, at)
) {
    private val channel = "story:$storyId"
    private val timer = Executors.newSingleThreadScheduledExecutor()
    @Volatile private var socket: WebSocket? = null
    @Volatile private var running = false
    private var attempt = 0

    fun start() {
        running = true
        connect()
    }

    fun stop() {
        running = false
        socket?.close(1000, null)
        timer.shutdownNow()
    }

    private fun connect() {
        val url = server.replaceFirst("http", "ws") + "/v1/ws"
        socket = client.newWebSocket(Request.Builder().url(url).build(), object : WebSocketListener() {
            override fun onOpen(webSocket: WebSocket, response: Response) {
                attempt = 0
                val subscribe = JSONObject().put("type", "subscribe").put("channel", channel)
                since?.let { subscribe.put("since", it).put("epoch", epoch) }
                webSocket.send(subscribe.toString())
            }

            override fun onMessage(webSocket: WebSocket, text: String) = handle(JSONObject(text))

            override fun onClosed(webSocket: WebSocket, code: Int, reason: String) = reconnect()

            override fun onFailure(webSocket: WebSocket, t: Throwable, response: Response?) = reconnect()
        })
    }

    private fun handle(message: JSONObject) {
        if (message.optString("channel") != channel) return
        when (message.getString("type")) {
            "subscribed" -> {
                epoch = message.getString("epoch")
                // Fresh start, or a reset follows: this seq is the position. When recovering,
                // the replayed updates move it forward one by one.
                if (since == null || !message.getBoolean("recovered")) since = message.getLong("seq")
            }
            "update" -> {
                val seq = message.getLong("seq")
                if (seq <= (since ?: 0L)) return       // already applied
                since = seq
                onUpdate(message.getJSONObject("event"))
            }
            "reset" -> {
                since = message.getLong("seq")
                onReset()
            }
            // pong, unsubscribed, error: see docs/protocol.md, "Errors"
        }
    }

    private fun reconnect() {
        if (!running) return
        // Full jitter: random(0, min(30 s, 0.5 s x 2^attempt)), so a server restart (1012) does
        // not bring every client back in the same second.
        val capMs = min(30_000.0, 500.0 * 2.0.pow(attempt)).toLong()
        attempt = min(attempt + 1, 10)
        timer.schedule({ if (running) connect() }, Random.nextLong(capMs + 1), TimeUnit.MILLISECONDS)
    }
}

// ---------------------------------------------------------------------------------------------
// Push: registering the FCM token and following a story on this device (blocking calls: run
// them off the main thread)
// ---------------------------------------------------------------------------------------------

class DeviceRegistration(
    private val client: OkHttpClient,
    private val server: String,
    val deviceId: String,
    val secret: String,   // keep it in EncryptedSharedPreferences: it is the only way to manage this device
) {
    companion object {
        private val JSON = "application/json".toMediaType()

        /** POST /v1/devices {"platform": "fcm", "token"} -> {device_id, secret}. */
        fun register(client: OkHttpClient, server: String, fcmToken: String): DeviceRegistration {
            val body = JSONObject().put("platform", "fcm").put("token", fcmToken).toString()
            val request = Request.Builder().url("$server/v1/devices").post(body.toRequestBody(JSON)).build()
            client.newCall(request).execute().use { response ->
                val text = response.body?.string().orEmpty()
                check(response.isSuccessful) { "register failed: HTTP ${response.code} $text" }
                val created = JSONObject(text)
                return DeviceRegistration(client, server, created.getString("device_id"), created.getString("secret"))
            }
        }
    }

    /** PUT /v1/devices/{id}/subscriptions/story:<id> with the device's secret as Bearer token. */
    fun follow(storyId: String) = subscription(storyId, "PUT")

    /** DELETE the same subscription: no more notifications for that story. */
    fun unfollow(storyId: String) = subscription(storyId, "DELETE")

    private fun subscription(storyId: String, method: String) {
        val request = Request.Builder()
            .url("$server/v1/devices/$deviceId/subscriptions/story:$storyId")
            .header("Authorization", "Bearer $secret")
            .method(method, if (method == "PUT") ByteArray(0).toRequestBody(null) else null)
            .build()
        client.newCall(request).execute().use { response ->
            // Errors are {"error": {"code", "message"}} (docs/protocol.md, "REST").
            check(response.isSuccessful) { "$method subscription failed: HTTP ${response.code}" }
        }
    }
}

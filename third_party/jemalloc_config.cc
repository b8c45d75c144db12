// jemalloc's options for every binary linked with //third_party:jemalloc (jemalloc reads this
// symbol at start-up; MALLOC_CONF in the environment still overrides it).
//   background_thread, one: returns freed pages to the kernel over time, so an idle service does
//     not keep the peak of its last burst (without it, only new allocations trigger the purge).
//   dirty_decay_ms / muzzy_decay_ms: freed pages go back after about a second (default 10 s),
//     which keeps RSS within ~10% of glibc's malloc for the same stored objects.
extern "C" {
const char* malloc_conf =
    "background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0";
}

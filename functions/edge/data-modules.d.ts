// Binary files imported as Data modules (the `[[rules]]` of wrangler.toml): an ArrayBuffer each.
declare module '*.lst' {
  const bytes: ArrayBuffer;
  export default bytes;
}

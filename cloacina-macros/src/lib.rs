//! Procedural macros for Cloacina's authoring model: `#[workflow]` on a module of `#[task]`
//! functions, and `#[trigger]` on an event trigger's poll function.
//!
//! `#[workflow]` does the work: it reads every `#[task(...)]` function of its module, checks
//! each signature and the whole graph at compile time (duplicate ids, unknown dependencies or
//! rule references, cycles), and generates `workflow()` plus a registration the runner picks up.
//! Every error points at the offending token. `#[task]` outside a workflow only checks the
//! signature.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Expr, ExprLit, Item, ItemFn, ItemMod, Lit, LitStr, MetaNameValue, Token};

type Args = Punctuated<MetaNameValue, Token![,]>;

/// Where the generated code finds Cloacina's types: `::cloacina` for programs that embed the
/// engine (the macros as `cloacina` re-exports them), `::cloacina_workflow` for workflow packages,
/// which depend on the authoring crate alone (the macros as `cloacina_workflow` re-exports them).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Root {
    Cloacina,
    WorkflowCrate,
}

impl quote::ToTokens for Root {
    fn to_tokens(&self, tokens: &mut TokenStream2) {
        tokens.extend(match self {
            Root::Cloacina => quote!(::cloacina),
            Root::WorkflowCrate => quote!(::cloacina_workflow),
        });
    }
}

/// Marks an async function as a task. Only meaningful inside a `#[workflow]` module, which reads
/// its arguments; on its own it checks the signature and leaves the function unchanged.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_task(args, item)
}

/// [`task`] as `cloacina_workflow` re-exports it (for workflow packages).
#[doc(hidden)]
#[proc_macro_attribute]
pub fn packaged_task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand_task(args, item)
}

fn expand_task(args: TokenStream, item: TokenStream) -> TokenStream {
    let func = syn::parse_macro_input!(item as ItemFn);
    let checked = Args::parse_terminated.parse(args).and_then(|_| check_signature(&func));
    match checked {
        Ok(()) => quote!(#func).into(),
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func).into()
        }
    }
}

/// Turns a module of `#[task]` functions into a workflow: `workflow()` builds it and the
/// workflow registers itself, so every runner in the binary (or the package's host) knows it.
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    workflow_at(Root::Cloacina, args, item)
}

/// [`workflow`] as `cloacina_workflow` re-exports it (for workflow packages).
#[doc(hidden)]
#[proc_macro_attribute]
pub fn packaged_workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    workflow_at(Root::WorkflowCrate, args, item)
}

fn workflow_at(root: Root, args: TokenStream, item: TokenStream) -> TokenStream {
    let module = syn::parse_macro_input!(item as ItemMod);
    match expand_workflow(&root, args.into(), module.clone()) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            // Keep the module so the one real error is not buried under follow-on errors about a
            // module that vanished; drop `#[task]` only where it would repeat a signature error.
            let err = e.to_compile_error();
            let mut module = module;
            if let Some((_, items)) = module.content.as_mut() {
                for item in items.iter_mut() {
                    if let Item::Fn(func) = item {
                        if check_signature(func).is_err() {
                            func.attrs.retain(|a| !is_task_attr(a));
                        }
                    }
                }
            }
            quote!(#err #module).into()
        }
    }
}

/// Makes an async function an event trigger that registers itself (upstream's forms):
///
/// ```text
/// #[trigger(on = "workflow_name", poll_interval = "5s", allow_concurrent = false, name = "…")]
/// async fn check_inbox() -> Result<TriggerResult, TriggerError> { … }
///
/// #[trigger(on = "workflow_name", cron = "0 0 * * *", timezone = "UTC", name = "…")]
/// async fn nightly() -> Result<TriggerResult, TriggerError> { … }
/// ```
///
/// A poll trigger needs `on` and `poll_interval` (`100ms`, `5s`, `2m`, `1h`), checked at compile
/// time; `allow_concurrent` defaults to `false`, `name` to the function's name. A cron trigger
/// declares a cron schedule of `on` (the function is not called): runners that have the workflow
/// create the schedule once, keyed by the trigger's name. The function stays callable as written.
#[proc_macro_attribute]
pub fn trigger(args: TokenStream, item: TokenStream) -> TokenStream {
    trigger_at(Root::Cloacina, args, item)
}

/// [`trigger`] as `cloacina_workflow` re-exports it (for workflow packages).
#[doc(hidden)]
#[proc_macro_attribute]
pub fn packaged_trigger(args: TokenStream, item: TokenStream) -> TokenStream {
    trigger_at(Root::WorkflowCrate, args, item)
}

fn trigger_at(root: Root, args: TokenStream, item: TokenStream) -> TokenStream {
    let func = syn::parse_macro_input!(item as ItemFn);
    match expand_trigger(&root, args.into(), &func) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func).into()
        }
    }
}

fn expand_trigger(root: &Root, args: TokenStream2, func: &ItemFn) -> syn::Result<TokenStream2> {
    let args = Args::parse_terminated.parse2(args)?;
    let (mut on, mut interval, mut allow, mut name) = (None, None, false, None);
    let (mut cron, mut timezone) = (None, None);
    for arg in &args {
        match key(arg)?.as_str() {
            "on" => on = Some(lit_str(&arg.value)?),
            "poll_interval" => {
                let lit = lit_str(&arg.value)?;
                let parsed = cloacina_rules::parse_poll_interval(&lit.value())
                    .map_err(|e| Error::new(lit.span(), e.to_string()))?;
                interval = Some((u64::try_from(parsed.as_millis()).unwrap_or(u64::MAX), arg.path.span()));
            }
            "allow_concurrent" => allow = lit_bool(&arg.value)?,
            "name" => name = Some(lit_str(&arg.value)?.value()),
            "cron" => cron = Some(lit_str(&arg.value)?),
            "timezone" => timezone = Some(lit_str(&arg.value)?),
            other => {
                return Err(Error::new(
                    arg.path.span(),
                    format!(
                        "unknown trigger argument `{other}`; expected on, poll_interval, allow_concurrent, cron, \
                         timezone or name"
                    ),
                ))
            }
        }
    }
    let sig = &func.sig;
    let expected = "a trigger must be `async fn name() -> Result<TriggerResult, TriggerError>`";
    if sig.asyncness.is_none() {
        return Err(Error::new(sig.fn_token.span(), format!("{expected}: this function is not async")));
    }
    if let Some(arg) = sig.inputs.first() {
        return Err(Error::new(arg.span(), format!("{expected}: it takes no arguments")));
    }
    let on = on.ok_or_else(|| Error::new(sig.ident.span(), "#[trigger] needs `on = \"workflow_name\"`"))?;
    let ident = &sig.ident;
    let name = name.unwrap_or_else(|| ident.to_string());
    if let Some(expression) = cron {
        if let Some((_, span)) = interval {
            return Err(Error::new(span, "a trigger has either `cron` or `poll_interval`, not both"));
        }
        let timezone = timezone.map_or_else(|| "UTC".to_owned(), |t| t.value());
        return Ok(quote! {
            #func
            #root::__private::inventory::submit! {
                #root::trigger::CronRegistration(|| #root::trigger::CronTrigger {
                    name: ::std::string::String::from(#name),
                    workflow: ::std::string::String::from(#on),
                    expression: ::std::string::String::from(#expression),
                    timezone: ::std::string::String::from(#timezone),
                })
            }
        });
    }
    if let Some(tz) = timezone {
        return Err(Error::new(tz.span(), "`timezone` goes with `cron`"));
    }
    let (interval, _) = interval.ok_or_else(|| {
        Error::new(sig.ident.span(), "#[trigger] needs `poll_interval = \"5s\"` (ms, s, m or h) or `cron = \"…\"`")
    })?;
    Ok(quote! {
        #func
        #root::__private::inventory::submit! {
            #root::trigger::Registration(|| {
                #root::trigger::Trigger::new(#name, #on, ::std::time::Duration::from_millis(#interval), #ident)
                    .expect("the trigger's settings were checked at compile time")
                    .allow_concurrent(#allow)
            })
        }
    })
}

/// One task as read from its attribute.
struct TaskDef {
    id: String,
    id_span: Span,
    fn_ident: syn::Ident,
    deps: Vec<LitStr>,
    rule: TokenStream2,
    rule_refs: Vec<LitStr>,
    retry: TokenStream2,
    timeout: TokenStream2,
    /// `.on_success(…)` / `.on_failure(…)` builder calls for the task's hooks.
    hooks: TokenStream2,
    /// The function takes a `TaskHandle` as its second parameter.
    with_handle: bool,
    /// The function's visibility, which its `<name>_task()` constructor shares.
    vis: syn::Visibility,
}

fn expand_workflow(root: &Root, args: TokenStream2, mut module: ItemMod) -> syn::Result<TokenStream2> {
    let args = Args::parse_terminated.parse2(args)?;
    let (mut name, mut description, mut author) = (None, None, None);
    for arg in &args {
        match key(arg)?.as_str() {
            "name" => name = Some(lit_str(&arg.value)?),
            "description" => description = Some(lit_str(&arg.value)?),
            "author" => author = Some(lit_str(&arg.value)?),
            other => {
                return Err(Error::new(
                    arg.path.span(),
                    format!("unknown workflow argument `{other}`; expected `name`, `description` or `author`"),
                ))
            }
        }
    }
    let mod_span = module.ident.span();
    let name = name.map_or_else(|| module.ident.to_string(), |n| n.value());
    let Some((_, items)) = module.content.as_mut() else {
        return Err(Error::new(mod_span, "#[workflow] needs an inline module: `mod name { … }`"));
    };

    let mut tasks = Vec::new();
    for item in items.iter_mut() {
        let Item::Fn(func) = item else { continue };
        // The attribute stays: `#[task]` then expands to the function unchanged (its signature
        // was just checked), and the user's `use cloacina::task` counts as used.
        let Some(attr) = func.attrs.iter().find(|a| is_task_attr(a)).cloned() else { continue };
        check_signature(func)?;
        tasks.push(read_task(root, &attr, func)?);
    }
    if tasks.is_empty() {
        return Err(Error::new(mod_span, format!("workflow `{name}` has no #[task] functions")));
    }
    check_graph(&name, &tasks)?;

    if *root == Root::WorkflowCrate {
        if let Some(t) = tasks.iter().find(|t| t.with_handle) {
            return Err(Error::new(
                t.fn_ident.span(),
                "a packaged task cannot take a TaskHandle: deferral needs the runner's slots, which a package \
                 does not reach; wait inside the task instead",
            ));
        }
    }
    let description = description.map_or_else(|| quote!(), |d| quote!(.description(#d)));
    let author = author.map_or_else(|| quote!(), |a| quote!(.author(#a)));
    let mut constructors = Vec::new();
    let steps: Vec<TokenStream2> = tasks
        .iter()
        .map(|t| {
            let (id, f, rule, retry, timeout, hooks) = (&t.id, &t.fn_ident, &t.rule, &t.retry, &t.timeout, &t.hooks);
            let call = if t.with_handle {
                quote!({
                    let mut handle = #root::task::TaskHandle::current();
                    #f(&mut ctx, &mut handle).await
                })
            } else {
                quote!(#f(&mut ctx).await)
            };
            let deps = &t.deps;
            let vis = &t.vis;
            let ctor = syn::Ident::new(&format!("{f}_task"), f.span());
            let doc = format!("Task `{id}` on its own, declaration and code (generated by `#[workflow]`).");
            constructors.push(quote! {
                #[doc = #doc]
                #vis fn #ctor() -> #root::workflow::TaskDefinition {
                    #root::workflow::TaskDefinition::new(
                        #root::workflow::TaskSpec {
                            id: ::std::string::String::from(#id),
                            dependencies: ::std::vec![#(::std::string::String::from(#deps)),*],
                            trigger_rule: #rule,
                            retry: #retry,
                            timeout: #timeout,
                        },
                        |mut ctx: #root::Context<#root::__private::serde_json::Value>| async move {
                            #call.map(|()| ctx)
                        },
                    )
                }
            });
            quote!(.with_task(#ctor()) #hooks)
        })
        .collect();
    for ctor in constructors {
        items.push(syn::parse_quote!(#ctor));
    }
    items.push(syn::parse_quote! {
        /// Builds this workflow (generated by `#[workflow]`; the graph was checked at compile time).
        pub fn workflow() -> #root::workflow::Workflow {
            #root::workflow::Workflow::builder(#name)
                #description
                #author
                #(#steps)*
                .build()
                .expect("the workflow graph was validated at compile time")
        }
    });
    items.push(syn::parse_quote! {
        #root::__private::inventory::submit! {
            #root::workflow::Registration(workflow)
        }
    });
    Ok(quote!(#module))
}

fn is_task_attr(attr: &syn::Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "task")
}

fn key(arg: &MetaNameValue) -> syn::Result<String> {
    arg.path.get_ident().map(ToString::to_string).ok_or_else(|| Error::new(arg.path.span(), "expected a plain name"))
}

fn lit_str(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.clone()),
        other => Err(Error::new(other.span(), "expected a string literal")),
    }
}

fn lit_u64(expr: &Expr) -> syn::Result<u64> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse(),
        other => Err(Error::new(other.span(), "expected an integer literal")),
    }
}

fn lit_bool(expr: &Expr) -> syn::Result<bool> {
    match expr {
        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Ok(b.value),
        other => Err(Error::new(other.span(), "expected `true` or `false`")),
    }
}

/// `async fn name(ctx: &mut Context<…>) -> Result<(), TaskError>`.
fn check_signature(func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    let expected = "a task must be `async fn name(context: &mut Context<serde_json::Value>) -> Result<(), TaskError>`";
    if sig.asyncness.is_none() {
        return Err(Error::new(sig.fn_token.span(), format!("{expected}: this function is not async")));
    }
    let mut inputs = sig.inputs.iter();
    let first = inputs.next();
    let is_mut_ref = |arg: Option<&syn::FnArg>| matches!(arg, Some(syn::FnArg::Typed(p)) if matches!(&*p.ty, syn::Type::Reference(r) if r.mutability.is_some()));
    if !is_mut_ref(first) {
        let span = first.map_or(sig.ident.span(), Spanned::span);
        return Err(Error::new(span, format!("{expected}: it takes exactly one `&mut Context<…>` argument")));
    }
    // An optional second parameter, as upstream: `handle: &mut TaskHandle` (or `task_handle`).
    if let Some(second) = inputs.next() {
        if !(is_mut_ref(Some(second)) && takes_handle(func)) || inputs.next().is_some() {
            return Err(Error::new(
                second.span(),
                format!("{expected}, optionally followed by `handle: &mut TaskHandle`"),
            ));
        }
    }
    let returns_result = matches!(&sig.output, syn::ReturnType::Type(_, ty)
        if matches!(&**ty, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result")));
    if !returns_result {
        return Err(Error::new(sig.output.span(), format!("{expected}: it must return `Result<(), TaskError>`")));
    }
    Ok(())
}

/// True when the task's second parameter is its `TaskHandle` (named `handle` or `task_handle`).
fn takes_handle(func: &ItemFn) -> bool {
    matches!(func.sig.inputs.iter().nth(1), Some(syn::FnArg::Typed(p))
        if matches!(&*p.pat, syn::Pat::Ident(i) if i.ident == "handle" || i.ident == "task_handle"))
}

/// `on_success = path` / `on_failure = path`: the hook function.
fn hook_path(value: &Expr) -> syn::Result<syn::Path> {
    match value {
        Expr::Path(p) => Ok(p.path.clone()),
        other => Err(Error::new(other.span(), "expected the name of an async hook function")),
    }
}

/// `retry_condition = "all" | "never" | "transient" | "pattern:a,b"` (upstream's spellings).
fn retry_condition(root: &Root, value: &Expr) -> syn::Result<TokenStream2> {
    let lit = lit_str(value)?;
    let text = lit.value();
    Ok(match text.as_str() {
        "all" => quote!(#root::retry::RetryCondition::AllErrors),
        "never" => quote!(#root::retry::RetryCondition::Never),
        "transient" => quote!(#root::retry::RetryCondition::TransientOnly),
        _ => match text.strip_prefix("pattern:") {
            Some(list) if list.split(',').any(|p| !p.trim().is_empty()) => {
                let patterns = list.split(',').map(str::trim).filter(|p| !p.is_empty());
                quote!(#root::retry::RetryCondition::ErrorPattern {
                    patterns: ::std::vec![#(::std::string::String::from(#patterns)),*],
                })
            }
            _ => {
                return Err(Error::new(
                    lit.span(),
                    "expected retry_condition = \"all\", \"never\", \"transient\" or \"pattern:word,word\"",
                ))
            }
        },
    })
}

fn read_task(root: &Root, attr: &syn::Attribute, func: &ItemFn) -> syn::Result<TaskDef> {
    let args = match &attr.meta {
        syn::Meta::Path(_) => Args::new(),
        syn::Meta::List(list) => Args::parse_terminated.parse2(list.tokens.clone())?,
        syn::Meta::NameValue(nv) => return Err(Error::new(nv.span(), "use #[task(...)]")),
    };
    let fn_ident = func.sig.ident.clone();
    let mut def = TaskDef {
        id: fn_ident.to_string(),
        id_span: fn_ident.span(),
        fn_ident,
        deps: Vec::new(),
        rule: quote!(#root::task::TriggerRule::Always),
        rule_refs: Vec::new(),
        retry: TokenStream2::new(),
        timeout: quote!(::std::option::Option::None),
        hooks: TokenStream2::new(),
        with_handle: takes_handle(func),
        vis: func.vis.clone(),
    };
    let (mut attempts, mut backoff, mut delay, mut max_delay, mut jitter) = (3u64, None, 1_000u64, 60_000u64, true);
    let (mut condition, mut success, mut failure) = (None, None, None);
    for arg in &args {
        match key(arg)?.as_str() {
            "id" => {
                let id = lit_str(&arg.value)?;
                if id.value().trim().is_empty() {
                    return Err(Error::new(id.span(), "a task id must not be empty"));
                }
                def.id = id.value();
                def.id_span = id.span();
            }
            "dependencies" => match &arg.value {
                Expr::Array(array) => def.deps = array.elems.iter().map(lit_str).collect::<syn::Result<_>>()?,
                other => return Err(Error::new(other.span(), "expected `dependencies = [\"task\", …]`")),
            },
            "retry_attempts" => attempts = lit_u64(&arg.value)?.max(1),
            "retry_backoff" => {
                let b = lit_str(&arg.value)?;
                backoff = Some(match b.value().as_str() {
                    "fixed" => quote!(#root::retry::Backoff::Fixed),
                    "linear" => quote!(#root::retry::Backoff::Linear),
                    "exponential" => quote!(#root::retry::Backoff::Exponential),
                    _ => return Err(Error::new(b.span(), "expected \"fixed\", \"linear\" or \"exponential\"")),
                });
            }
            "retry_delay_ms" => delay = lit_u64(&arg.value)?,
            "retry_max_delay_ms" => max_delay = lit_u64(&arg.value)?,
            "retry_jitter" => jitter = lit_bool(&arg.value)?,
            "retry_condition" => condition = Some(retry_condition(root, &arg.value)?),
            "on_success" => success = Some(hook_path(&arg.value)?),
            "on_failure" => failure = Some(hook_path(&arg.value)?),
            "timeout_ms" => {
                let ms = lit_u64(&arg.value)?;
                def.timeout = quote!(::std::option::Option::Some(::std::time::Duration::from_millis(#ms)));
            }
            "trigger_rules" => def.rule = rule(root, &arg.value, &mut def.rule_refs)?,
            other => {
                return Err(Error::new(
                    arg.path.span(),
                    format!(
                        "unknown task argument `{other}`; expected id, dependencies, retry_attempts, retry_backoff, \
                         retry_delay_ms, retry_max_delay_ms, retry_jitter, retry_condition, timeout_ms, \
                         trigger_rules, on_success or on_failure"
                    ),
                ))
            }
        }
    }
    let attempts = u32::try_from(attempts).map_err(|_| Error::new(attr.span(), "retry_attempts is too large"))?;
    let backoff = backoff.unwrap_or_else(|| quote!(#root::retry::Backoff::Exponential));
    let condition = condition.unwrap_or_else(|| quote!(#root::retry::RetryCondition::AllErrors));
    let id = &def.id;
    let context = quote!(#root::Context<#root::__private::serde_json::Value>);
    if let Some(f) = success {
        def.hooks.extend(quote! {
            .on_success(#id, |task_id: ::std::string::String, ctx: #context| async move { #f(&task_id, &ctx).await })
        });
    }
    if let Some(f) = failure {
        def.hooks.extend(quote! {
            .on_failure(#id, |task_id: ::std::string::String, error: #root::TaskError, ctx: #context| async move {
                #f(&task_id, &error, &ctx).await
            })
        });
    }
    def.retry = quote! {
        #root::retry::RetryPolicy {
            max_attempts: #attempts,
            backoff: #backoff,
            initial_delay: ::std::time::Duration::from_millis(#delay),
            max_delay: ::std::time::Duration::from_millis(#max_delay),
            jitter: #jitter,
            retry_conditions: ::std::vec![#condition],
        }
    };
    Ok(def)
}

/// Translates the trigger-rule mini-language into a `TriggerRule` expression, collecting the task
/// names it refers to (checked against the workflow).
fn rule(root: &Root, expr: &Expr, refs: &mut Vec<LitStr>) -> syn::Result<TokenStream2> {
    let span = expr.span();
    let (name, args): (String, Vec<&Expr>) = match expr {
        Expr::Path(p) if p.path.get_ident().is_some() => (p.path.segments[0].ident.to_string(), Vec::new()),
        Expr::Call(call) => match &*call.func {
            Expr::Path(p) if p.path.get_ident().is_some() => {
                (p.path.segments[0].ident.to_string(), call.args.iter().collect())
            }
            other => return Err(Error::new(other.span(), "expected a rule name")),
        },
        other => return Err(Error::new(other.span(), "expected a trigger rule such as `all(task_success(\"a\"))`")),
    };
    let rules = |refs: &mut Vec<LitStr>| -> syn::Result<Vec<TokenStream2>> {
        args.iter().map(|a| rule(root, a, refs)).collect()
    };
    Ok(match name.as_str() {
        "always" => quote_spanned!(span=> #root::task::TriggerRule::Always),
        "all" => {
            let r = rules(refs)?;
            quote_spanned!(span=> #root::task::TriggerRule::All { rules: ::std::vec![#(#r),*] })
        }
        "any" => {
            let r = rules(refs)?;
            quote_spanned!(span=> #root::task::TriggerRule::Any { rules: ::std::vec![#(#r),*] })
        }
        "none" => {
            let r = rules(refs)?;
            quote_spanned!(span=> #root::task::TriggerRule::None { rules: ::std::vec![#(#r),*] })
        }
        "task_success" | "task_failed" | "task_skipped" => {
            let [arg] = args.as_slice() else {
                return Err(Error::new(span, format!("`{name}` takes one task id")));
            };
            let task = lit_str(arg)?;
            refs.push(task.clone());
            let variant = match name.as_str() {
                "task_success" => quote!(TaskSuccess),
                "task_failed" => quote!(TaskFailed),
                _ => quote!(TaskSkipped),
            };
            quote_spanned!(span=> #root::task::TriggerRule::#variant { task: ::std::string::String::from(#task) })
        }
        "context_value" => {
            let (key, op, value) = match args.as_slice() {
                [k, op] => (lit_str(k)?, *op, None),
                [k, op, v] => (lit_str(k)?, *op, Some(*v)),
                _ => return Err(Error::new(span, "`context_value` takes (\"key\", operator[, value])")),
            };
            let op_name = match op {
                Expr::Path(p) => p.path.get_ident().map(ToString::to_string).unwrap_or_default(),
                _ => String::new(),
            };
            let variant = match op_name.as_str() {
                "equals" => quote!(Equals),
                "not_equals" => quote!(NotEquals),
                "greater_than" => quote!(GreaterThan),
                "less_than" => quote!(LessThan),
                "contains" => quote!(Contains),
                "exists" => quote!(Exists),
                "not_exists" => quote!(NotExists),
                _ => return Err(Error::new(
                    op.span(),
                    "expected an operator: equals, not_equals, greater_than, less_than, contains, exists, not_exists",
                )),
            };
            let needs_value = !matches!(op_name.as_str(), "exists" | "not_exists");
            let value = match (value, needs_value) {
                (Some(v), true) => quote!(#root::__private::serde_json::json!(#v)),
                (None, false) => quote!(#root::__private::serde_json::Value::Null),
                (None, true) => return Err(Error::new(span, format!("`{op_name}` needs a value to compare with"))),
                (Some(v), false) => return Err(Error::new(v.span(), format!("`{op_name}` takes no value"))),
            };
            quote_spanned! {span=>
                #root::task::TriggerRule::ContextValue {
                    key: ::std::string::String::from(#key),
                    op: #root::task::ValueOperator::#variant,
                    value: #value,
                }
            }
        }
        other => {
            return Err(Error::new(
                span,
                format!(
                    "unknown trigger rule `{other}`; expected always, all, any, none, task_success, task_failed, \
                     task_skipped or context_value"
                ),
            ))
        }
    })
}

/// The graph rules of `cloacina-rules` (the ones `WorkflowSpec::new` applies at run time), each
/// violation reported at its source: a duplicate at the repeated id, an unknown task at the name
/// that refers to it, a cycle at the first task's first dependency.
fn check_graph(workflow: &str, tasks: &[TaskDef]) -> syn::Result<()> {
    use cloacina_rules::{check_graph, Error as GraphError, GraphNode};
    let names: Vec<(Vec<String>, Vec<String>)> = tasks
        .iter()
        .map(|t| (t.deps.iter().map(LitStr::value).collect(), t.rule_refs.iter().map(LitStr::value).collect()))
        .collect();
    let nodes: Vec<GraphNode<'_>> = tasks
        .iter()
        .zip(&names)
        .map(|(t, (deps, refs))| GraphNode {
            id: &t.id,
            dependencies: deps.iter().map(String::as_str).collect(),
            references: refs.iter().map(String::as_str).collect(),
        })
        .collect();
    let Err(error) = check_graph(workflow, &nodes) else { return Ok(()) };
    let by_id = |id: &str| tasks.iter().rev().find(|t| t.id == id);
    let span = match &error {
        GraphError::DuplicateTask { task, .. } => by_id(task).map(|t| t.id_span),
        GraphError::UnknownTask { task, unknown, .. } => by_id(task)
            .and_then(|t| t.deps.iter().chain(&t.rule_refs).find(|r| r.value() == *unknown))
            .map(LitStr::span),
        GraphError::Cycle { path, .. } => {
            path.first().and_then(|first| by_id(first)).map(|t| t.deps.first().map_or(t.id_span, LitStr::span))
        }
        _ => None,
    };
    Err(Error::new(span.unwrap_or_else(Span::call_site), error.to_string()))
}
